//! Decoders run where a failure is contained: a panic inside a third-party
//! decoder becomes an error for that file instead of ending the worker.
//! (A stack overflow cannot be caught; that is why the parsers refuse deep
//! nesting before decoding, see [`crate::svg`].)

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::MediaError;

/// Runs `f`, turning a panic into [`MediaError::Corrupt`] naming `what`.
pub(crate) fn contained<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, MediaError>,
) -> Result<T, MediaError> {
    // Everything `f` touches is its own or read-only: nothing is left half
    // changed for anyone else when it unwinds.
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown failure".into());
            tracing::warn!("a decoder panicked while {what}: {message}");
            Err(MediaError::Corrupt(format!(
                "the decoder failed on this file while {what}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        let err = contained::<()>("probing", || panic!("index out of bounds")).unwrap_err();
        assert!(matches!(err, MediaError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("decoder failed"), "{err}");
        assert_eq!(contained("probing", || Ok(7)).unwrap(), 7);
    }
}

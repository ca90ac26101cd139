//! QCOW2 header checks. Disk images are stored, never decoded.

use crate::MediaError;

/// Bytes of the version 2 header; version 3 headers are at least 104.
pub const HEADER_V2_LEN: usize = 72;
pub const HEADER_V3_MIN_LEN: u32 = 104;

/// Largest virtual size accepted: 32 PiB, far beyond any real disk, far below overflow.
const MAX_VIRTUAL_SIZE: u64 = 1 << 55;

pub struct Header {
    pub version: u32,
    pub virtual_size: u64,
    pub cluster_bits: u32,
    pub has_backing_file: bool,
    pub encrypted: bool,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let hi = be32(b, at)?;
    let lo = be32(b, at + 4)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

fn bad(what: &str) -> MediaError {
    MediaError::Corrupt(format!("not a valid QCOW2 disk image: {what}"))
}

/// Parses and checks the fixed header (give the first bytes of the file, 104 or more
/// when the file has them).
pub fn parse(head: &[u8], file_len: u64) -> Result<Header, MediaError> {
    if !head.starts_with(b"QFI\xfb") {
        return Err(bad("missing the QFI magic"));
    }
    if head.len() < HEADER_V2_LEN {
        return Err(bad("header is truncated"));
    }
    let field32 = |at| be32(head, at).ok_or_else(|| bad("header is truncated"));
    let field64 = |at| be64(head, at).ok_or_else(|| bad("header is truncated"));
    let version = field32(4)?;
    if version != 2 && version != 3 {
        return Err(bad(&format!("version {version} (only 2 and 3 are known)")));
    }
    let backing_offset = field64(8)?;
    let backing_size = field32(16)?;
    let cluster_bits = field32(20)?;
    let virtual_size = field64(24)?;
    let crypt_method = field32(32)?;
    let l1_size = field32(36)?;
    let l1_offset = field64(40)?;
    let refcount_offset = field64(48)?;
    let refcount_clusters = field32(56)?;
    if !(9..=21).contains(&cluster_bits) {
        return Err(bad(&format!("cluster_bits {cluster_bits} outside 9..=21")));
    }
    if virtual_size > MAX_VIRTUAL_SIZE {
        return Err(bad(&format!(
            "virtual size {virtual_size} is not plausible"
        )));
    }
    if crypt_method > 2 {
        return Err(bad(&format!("unknown encryption method {crypt_method}")));
    }
    let cluster_size = 1u64 << cluster_bits;
    // Each L1 entry covers cluster_size / 8 clusters of cluster_size bytes.
    let per_l1 = (cluster_size / 8) * cluster_size;
    let l1_needed = virtual_size.div_ceil(per_l1);
    if u64::from(l1_size) < l1_needed {
        return Err(bad("L1 table is too small for the virtual size"));
    }
    let unaligned = |offset: u64| offset & (cluster_size - 1) != 0;
    if l1_offset == 0 || unaligned(l1_offset) || unaligned(refcount_offset) || refcount_offset == 0
    {
        return Err(bad("table offsets are not cluster aligned"));
    }
    if refcount_clusters == 0 {
        return Err(bad("no refcount table"));
    }
    if file_len > 0 && (l1_offset >= file_len || refcount_offset >= file_len) {
        return Err(bad("tables point past the end of the file"));
    }
    if backing_offset != 0 && (backing_size == 0 || backing_size > 1023) {
        return Err(bad("backing file name has an invalid length"));
    }
    if version == 3 {
        let header_length = field32(100)?;
        if header_length < HEADER_V3_MIN_LEN {
            return Err(bad(&format!("header length {header_length} is invalid")));
        }
    }
    Ok(Header {
        version,
        virtual_size,
        cluster_bits,
        has_backing_file: backing_offset != 0,
        encrypted: crypt_method != 0,
    })
}

//! Progress bars on stderr for the long admin commands (`migrate`, `gc`,
//! `check`), drawn only when stderr is a terminal: scripts, pipes and
//! tests see exactly what they saw without them.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;
use tintype_engine::Maintenance;

/// Whether bars are drawn (stderr is a terminal).
pub fn shown() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar that draws on stderr when it is a terminal and nowhere otherwise.
fn new_bar() -> ProgressBar {
    let target = if shown() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    if shown() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}

/// A counter without a known end: "{prefix} N".
fn counting(bar: &ProgressBar, prefix: &str) {
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix}: {pos} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(prefix.to_string());
}

/// A bar toward a known total.
fn towards(bar: &ProgressBar, prefix: &str, total: u64) {
    if bar.length() != Some(total) {
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}: [{bar:40}] {pos}/{len} {msg} [{elapsed}, {eta} left]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        bar.set_length(total);
    }
}

/// The display of a `gc` or `check` run: images counted, then blobs
/// toward their total.
pub struct MaintenanceBar {
    bar: ProgressBar,
}

impl MaintenanceBar {
    pub fn new() -> Self {
        MaintenanceBar { bar: new_bar() }
    }

    pub fn update(&self, p: Maintenance) {
        match p {
            Maintenance::Images { done } => {
                if self.bar.length().is_some() || self.bar.position() == 0 {
                    counting(&self.bar, "images checked");
                }
                self.bar.set_position(done);
            }
            Maintenance::Blobs { done, total } => {
                towards(&self.bar, "blobs", total);
                self.bar.set_position(done);
            }
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The display of a `migrate` run: the blob copy toward its total, then
/// the catalog's tables.
pub struct MigrateBar {
    bar: ProgressBar,
}

impl MigrateBar {
    pub fn new() -> Self {
        MigrateBar { bar: new_bar() }
    }

    pub fn update(&self, p: &tintype_store::Progress) {
        match p {
            tintype_store::Progress::Blob { done, total, .. } => {
                towards(&self.bar, "blobs copied and verified", *total);
                self.bar.set_position(*done);
            }
            tintype_store::Progress::Rows { table, copied } => {
                if self.bar.length().is_some() {
                    counting(&self.bar, "rows");
                }
                self.bar.set_message(format!("({table})"));
                self.bar.set_position(*copied);
            }
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

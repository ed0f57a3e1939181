//! Progress bars (indicatif) for the library's `Progress` reports, and a log
//! writer that lifts the bars out of the way so log lines never garble them.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use goodhart::progress::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bars {
    multi: MultiProgress,
    /// Put before each stage's name (a lane's task).
    prefix: String,
    current: Mutex<Option<ProgressBar>>,
    /// A lane's bars (one stage of a run) leave the screen when they finish,
    /// so the display shows the stages running now.
    transient: bool,
}

impl Bars {
    pub fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            prefix: String::new(),
            current: Mutex::new(None),
            transient: false,
        }
    }

    fn end(&self, bar: ProgressBar) {
        if self.transient {
            bar.finish_and_clear();
        } else {
            bar.finish();
        }
    }

    pub fn log_writer(&self) -> LogWriter {
        LogWriter(self.multi.clone())
    }

    /// Print a result line on standard output, with the bars lifted out of the way.
    pub fn println(&self, line: &str) {
        // Results that matter are in files; a reader that went away is no error here.
        self.multi.suspend(|| {
            let _ = writeln!(std::io::stdout(), "{line}");
        });
    }
}

impl Progress for Bars {
    fn start(&self, stage: &str, total: u64) {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>24.bold} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}{stage}", self.prefix));
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Some(old) = self.current.lock().expect("bar lock").replace(bar) {
            self.end(old);
        }
    }

    fn advance(&self, n: u64) {
        if let Some(b) = self.current.lock().expect("bar lock").as_ref() {
            b.inc(n);
        }
    }

    fn message(&self, msg: &str) {
        if let Some(b) = self.current.lock().expect("bar lock").as_ref() {
            b.set_message(msg.to_string());
        }
    }

    fn finish(&self) {
        if let Some(b) = self.current.lock().expect("bar lock").take() {
            self.end(b);
        }
    }

    fn lane(&self, name: &str) -> Box<dyn Progress + '_> {
        Box::new(Bars {
            multi: self.multi.clone(),
            prefix: format!("{name}: "),
            current: Mutex::new(None),
            transient: true,
        })
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if self.transient {
            self.finish();
        }
    }
}

/// Writes log lines to stderr with the progress bars suspended.
#[derive(Clone)]
pub struct LogWriter(MultiProgress);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.suspend(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

//! Loading a model off the UI thread: [`Loader::spawn`] starts [`Document::load`] on a worker
//! thread; the UI polls [`Loader::poll`] each frame and shows [`Loader::progress`].
//!
//! Cancel-safe: [`Loader::cancel`] (or dropping the loader) sets a flag the worker checks
//! between stages; its result is then discarded. The worker never touches UI state; it only
//! asks for a repaint through the callback it was given.

use crate::doc::{DocError, Document};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Progress of a load: fraction done and the current stage.
#[derive(Clone, Debug, Default)]
pub struct LoadProgress {
    pub fraction: f32,
    pub stage: String,
}

/// A load in flight.
pub struct Loader {
    /// What is being opened.
    pub source: String,
    pub device: String,
    progress: Arc<Mutex<LoadProgress>>,
    cancel: Arc<AtomicBool>,
    rx: Receiver<Result<Document, DocError>>,
    handle: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts loading `source` on `device`; `repaint` is called from the worker whenever
    /// progress changes and when the result is ready.
    pub fn spawn(source: &str, device: &str, repaint: impl Fn() + Send + 'static) -> Loader {
        let progress = Arc::new(Mutex::new(LoadProgress {
            fraction: 0.0,
            stage: format!("opening {source}"),
        }));
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let (p, c) = (progress.clone(), cancel.clone());
        let (s, d) = (source.to_string(), device.to_string());
        let handle = std::thread::Builder::new()
            .name("petasos-viewer-load".into())
            .spawn(move || {
                let mut last = -1.0f32;
                let mut report = |f: f32, stage: &str| {
                    // Throttle: repaint on stage changes and every 1%.
                    if let Ok(mut g) = p.lock() {
                        if g.stage != stage || f - last >= 0.01 {
                            g.fraction = f;
                            g.stage = stage.to_string();
                            last = f;
                            repaint();
                        }
                    }
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Document::load(&s, &d, &mut report, &c)
                }))
                .unwrap_or_else(|_| {
                    Err(DocError::Load {
                        file: s.clone(),
                        cause: "the loader failed unexpectedly".into(),
                    })
                });
                // The receiver may be gone (cancelled): nothing to do then.
                let _ = tx.send(r);
                repaint();
            })
            .ok();
        Loader {
            source: source.to_string(),
            device: device.to_string(),
            progress,
            cancel,
            rx,
            handle,
        }
    }

    /// The result once the worker is done (`Some` exactly once).
    pub fn poll(&mut self) -> Option<Result<Document, DocError>> {
        if self.handle.is_none() {
            return Some(Err(DocError::Load {
                file: self.source.clone(),
                cause: "could not start a loader thread".into(),
            }));
        }
        match self.rx.try_recv() {
            Ok(r) => {
                if let Some(h) = self.handle.take() {
                    let _ = h.join();
                }
                Some(r)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.handle = None;
                Some(Err(DocError::Load {
                    file: self.source.clone(),
                    cause: "the loader stopped without a result".into(),
                }))
            }
        }
    }

    /// Fraction done and stage text.
    pub fn progress(&self) -> LoadProgress {
        self.progress.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Asks the worker to stop; its result will be discarded.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Blocks until the worker is done (tests).
    pub fn wait(&mut self) -> Result<Document, DocError> {
        loop {
            if let Some(r) = self.poll() {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // The worker finishes its current stage and exits; it is not joined.
        self.cancel();
    }
}

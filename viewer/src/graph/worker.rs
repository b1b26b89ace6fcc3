//! Building a drawable scene (visible graph + layout + spatial index + box texts) and running
//! that on a worker thread with a progress fraction.

use super::hierarchy::{Hierarchy, VisGraph, VisItem};
use super::layout::{layout_cancellable, Layout, LayoutInput};
use super::spatial::SpatialIndex;
use super::GraphData;
use egui::{vec2, Vec2};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;

/// Approximate advance of one character of the box's first line (12 pt proportional font).
pub const CHAR_W1: f32 = 7.0;
/// Approximate advance of one character of the box's second line (10 pt).
pub const CHAR_W2: f32 = 6.0;
/// Horizontal padding inside a box.
pub const PAD_X: f32 = 8.0;
/// Narrowest box.
pub const MIN_W: f32 = 48.0;
/// Narrowest group box (room for "N ops, metric sum").
pub const GROUP_MIN_W: f32 = 150.0;
/// Widest box; longer labels are truncated when drawn.
pub const MAX_W: f32 = 220.0;

/// Everything the view draws for one collapse state.
#[derive(Clone, Debug, Default)]
pub struct Scene {
    /// The visible graph (items and merged edges); the layout's edge `e` is `vis.edges[e]`.
    pub vis: VisGraph,
    /// The layout of `vis` (one box per item).
    pub layout: Layout,
    /// Spatial index over `layout`.
    pub index: SpatialIndex,
    /// Two text lines per item (node: op type, name; group: last path segment, op count).
    pub text: Vec<[String; 2]>,
}

/// Box size for two lines of text, estimated from character counts (no font context needed).
pub fn box_size(line1: &str, line2: &str, group: bool) -> Vec2 {
    let w = (line1.chars().count() as f32 * CHAR_W1).max(line2.chars().count() as f32 * CHAR_W2);
    let (h, min_w) = if group {
        (40.0, GROUP_MIN_W)
    } else {
        (34.0, MIN_W)
    };
    vec2((w + 2.0 * PAD_X).clamp(min_w, MAX_W), h)
}

/// Builds the scene for `hier`'s collapse state synchronously.
pub fn build_scene(data: &GraphData, hier: &Hierarchy, progress: &dyn Fn(f32)) -> Scene {
    build_scene_cancellable(data, hier, progress, &|| false).unwrap_or_default()
}

/// Like [`build_scene`], giving up (`None`) soon after `cancelled` returns true.
pub fn build_scene_cancellable(
    data: &GraphData,
    hier: &Hierarchy,
    progress: &dyn Fn(f32),
    cancelled: &dyn Fn() -> bool,
) -> Option<Scene> {
    let vis = hier.visible(data);
    let text: Vec<[String; 2]> = vis
        .items
        .iter()
        .zip(&vis.item_count)
        .map(|(item, &count)| match *item {
            VisItem::Node(n) => {
                let node = &data.nodes[n];
                [node.op_type.clone(), node.label.clone()]
            }
            VisItem::Group(g) => {
                // The last path segment names the group on its box; the tooltip has the path.
                let path = hier.groups().get(g).map(|x| x.path.as_str()).unwrap_or("");
                let last = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path);
                [last.to_string(), format!("{count} ops")]
            }
        })
        .collect();
    let sizes = vis
        .items
        .iter()
        .zip(&text)
        .map(|(item, t)| box_size(&t[0], &t[1], matches!(item, VisItem::Group(_))))
        .collect();
    let input = LayoutInput {
        sizes,
        edges: vis.edges.iter().map(|e| (e.from, e.to)).collect(),
    };
    let layout = layout_cancellable(&input, &|f| progress(f * 0.95), cancelled)?;
    let index = SpatialIndex::new(&layout);
    progress(1.0);
    Some(Scene {
        vis,
        layout,
        index,
        text,
    })
}

/// A scene being built on a worker thread.
/// Dropping the job cancels the worker at its next phase boundary.
pub struct LayoutJob {
    rx: Receiver<Scene>,
    progress: Arc<AtomicU32>,
    cancel: Arc<AtomicBool>,
}

impl Drop for LayoutJob {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// What polling a job gives.
pub enum Poll {
    /// Still running.
    Pending,
    /// Finished.
    Done(Box<Scene>),
    /// The worker died (panicked) without a result.
    Failed,
}

impl LayoutJob {
    /// Starts building the scene of `hier` over `data` on a new thread.
    pub fn spawn(data: Arc<GraphData>, hier: Hierarchy) -> LayoutJob {
        let (tx, rx) = channel();
        let progress = Arc::new(AtomicU32::new(0));
        let p = progress.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let spawned = std::thread::Builder::new()
            .name("graph-layout".into())
            .spawn(move || {
                let scene = build_scene_cancellable(
                    &data,
                    &hier,
                    &|f| p.store((f.clamp(0.0, 1.0) * 1000.0) as u32, Ordering::Relaxed),
                    &|| c.load(Ordering::Relaxed),
                );
                if let Some(s) = scene {
                    let _ = tx.send(s);
                }
            });
        // If the thread cannot be spawned, `tx` is dropped with the closure and the job
        // reports `Failed` on the next poll.
        drop(spawned);
        LayoutJob {
            rx,
            progress,
            cancel,
        }
    }

    /// Progress fraction in `[0, 1]`.
    pub fn progress(&self) -> f32 {
        self.progress.load(Ordering::Relaxed) as f32 / 1000.0
    }

    /// Non-blocking check for the result.
    pub fn poll(&self) -> Poll {
        match self.rx.try_recv() {
            Ok(s) => Poll::Done(Box::new(s)),
            Err(TryRecvError::Empty) => Poll::Pending,
            Err(TryRecvError::Disconnected) => Poll::Failed,
        }
    }

    /// Blocks until the result is there (`None` if the worker died).
    pub fn wait(&self) -> Option<Scene> {
        self.rx.recv().ok()
    }
}

//! The graph view: plain graph data (independent of the IR), a layered layout computed off the
//! UI thread, a layer hierarchy with collapse/expand, and the painter-drawn [`GraphView`] widget.
//!
//! Node indices everywhere are indices into [`GraphData::nodes`]; the app uses the same index
//! for its op rows, so a linked selection is one `Option<usize>`.

pub mod colour;
pub mod draw;
pub mod hierarchy;
pub mod layout;
pub mod minimap;
pub mod spatial;
pub mod synth;
pub mod view;
pub mod worker;

pub use colour::metric_colours;
pub use hierarchy::{Hierarchy, VisGraph, VisItem};
pub use layout::{Layout, LayoutInput};
pub use view::{Camera, GraphView};
pub use worker::{build_scene, Scene};

/// A graph as the view sees it: nodes and directed edges, nothing else.
#[derive(Clone, Debug, Default)]
pub struct GraphData {
    /// The nodes; their index is the node id used by the view, the style and the selection.
    pub nodes: Vec<GNode>,
    /// Directed edges between node indices (producer -> consumer). Edges naming a node index
    /// that does not exist are ignored by the view.
    pub edges: Vec<GEdge>,
}

/// One node (an op).
#[derive(Clone, Debug, Default)]
pub struct GNode {
    /// The node's name (shown in the box and the tooltip).
    pub label: String,
    /// The op type, e.g. `Conv`.
    pub op_type: String,
    /// The provenance layer path, e.g. `/layer1/0/conv1`; groups are built from its prefixes.
    pub path: String,
}

/// One directed edge (a tensor flowing from `from` to `to`).
#[derive(Clone, Debug, Default)]
pub struct GEdge {
    /// Producer node index.
    pub from: usize,
    /// Consumer node index.
    pub to: usize,
    /// Shown on hover, e.g. `float[1,64,56,56]`.
    pub label: String,
}

/// Per-frame styling of the nodes, indexed by node index. Shorter vectors are allowed: missing
/// entries mean "no fill" / "not highlighted".
#[derive(Clone, Debug, Default)]
pub struct NodeStyle {
    /// Fill colour per node (e.g. from [`metric_colours`]); `None` draws the default fill.
    pub fill: Vec<Option<egui::Color32>>,
    /// Search matches: highlighted nodes get a bright outline.
    pub highlight: Vec<bool>,
}

impl NodeStyle {
    /// The fill of node `i`, if any.
    pub fn fill_of(&self, i: usize) -> Option<egui::Color32> {
        self.fill.get(i).copied().flatten()
    }

    /// Whether node `i` is highlighted.
    pub fn is_highlighted(&self, i: usize) -> bool {
        self.highlight.get(i).copied().unwrap_or(false)
    }
}

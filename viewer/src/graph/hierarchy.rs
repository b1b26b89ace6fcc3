//! The layer hierarchy built from node paths, its collapse state, and the visible graph it
//! induces (collapsed groups drawn as one box, edges into/out of them merged).
//!
//! Paths are `/`-separated (`/layer1/0/conv1`). Every prefix of a node's path shared by at least
//! two nodes is a group (so `/layer1/0/conv1` holding one op is not a group of its own, while a
//! `/encoder/linear` holding MatMul + Add is). Group 0 is the root (path `""`), always expanded.

use super::GraphData;
use std::collections::{BinaryHeap, HashMap};

/// `auto_collapse` expands past its budget while fewer than this many items are visible...
pub const MIN_VISIBLE: usize = 24;
/// ... but never to more than this many items.
pub const HARD_CAP: usize = 2000;

/// One group of the hierarchy.
#[derive(Clone, Debug)]
pub struct Group {
    /// The group's path, e.g. `/layer1/0`; `""` for the root.
    pub path: String,
    /// The enclosing group; `None` only for the root.
    pub parent: Option<usize>,
    /// Direct child groups, in order of first appearance.
    pub groups: Vec<usize>,
    /// Nodes directly in this group (not in a child group), in index order.
    pub nodes: Vec<usize>,
    /// Number of nodes in this group and all its descendants.
    pub total: usize,
}

/// The group tree plus which groups are expanded.
#[derive(Clone, Debug)]
pub struct Hierarchy {
    groups: Vec<Group>,
    node_group: Vec<usize>,
    expanded: Vec<bool>,
}

/// An item of the visible graph: a node, or a collapsed group standing for all its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VisItem {
    /// A node index into [`GraphData::nodes`].
    Node(usize),
    /// A collapsed group index into [`Hierarchy::groups`].
    Group(usize),
}

/// A merged edge between two visible items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisEdge {
    /// Producer item index (into [`VisGraph::items`]).
    pub from: usize,
    /// Consumer item index.
    pub to: usize,
    /// The first original edge (index into [`GraphData::edges`]) merged into this one.
    pub edge: usize,
    /// How many original edges were merged into this one (>= 1).
    pub count: usize,
}

/// The graph as drawn under the current collapse state.
#[derive(Clone, Debug, Default)]
pub struct VisGraph {
    /// Visible items, in order of their first node.
    pub items: Vec<VisItem>,
    /// For each node, the item that shows it.
    pub node_item: Vec<usize>,
    /// For each item, how many nodes it stands for.
    pub item_count: Vec<usize>,
    /// Merged edges, no self-loops, no duplicates, in order of their first original edge.
    pub edges: Vec<VisEdge>,
}

/// The non-empty `/`-separated segments of a path.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// The prefixes of a path, shallowest first: `/a/b` -> `/a`, `/a/b`.
fn prefixes(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for s in segments(path) {
        cur.push('/');
        cur.push_str(s);
        out.push(cur.clone());
    }
    out
}

impl Hierarchy {
    /// The root group's index.
    pub const ROOT: usize = 0;

    /// Builds the group tree from the nodes' paths; everything starts expanded.
    pub fn new(data: &GraphData) -> Hierarchy {
        let all: Vec<Vec<String>> = data.nodes.iter().map(|n| prefixes(&n.path)).collect();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for p in all.iter().flatten() {
            *count.entry(p.as_str()).or_insert(0) += 1;
        }
        let mut groups = vec![Group {
            path: String::new(),
            parent: None,
            groups: Vec::new(),
            nodes: Vec::new(),
            total: data.nodes.len(),
        }];
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut node_group = Vec::with_capacity(data.nodes.len());
        for (n, ps) in all.iter().enumerate() {
            let mut g = Self::ROOT;
            for p in ps {
                if count.get(p.as_str()).copied().unwrap_or(0) < 2 {
                    continue;
                }
                g = match index.get(p.as_str()) {
                    Some(&id) => id,
                    None => {
                        let id = groups.len();
                        groups.push(Group {
                            path: p.clone(),
                            parent: Some(g),
                            groups: Vec::new(),
                            nodes: Vec::new(),
                            total: count.get(p.as_str()).copied().unwrap_or(0),
                        });
                        groups[g].groups.push(id);
                        index.insert(p.as_str(), id);
                        id
                    }
                };
            }
            groups[g].nodes.push(n);
            node_group.push(g);
        }
        let expanded = vec![true; groups.len()];
        Hierarchy {
            groups,
            node_group,
            expanded,
        }
    }

    /// All groups; index 0 is the root.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The innermost group holding `node` (the root for unknown indices).
    pub fn group_of(&self, node: usize) -> usize {
        self.node_group.get(node).copied().unwrap_or(Self::ROOT)
    }

    /// Whether group `g` is expanded (unknown groups count as expanded).
    pub fn is_expanded(&self, g: usize) -> bool {
        self.expanded.get(g).copied().unwrap_or(true)
    }

    /// Expands or collapses group `g`; the root cannot be collapsed. Returns whether anything
    /// changed.
    pub fn set_expanded(&mut self, g: usize, on: bool) -> bool {
        if g == Self::ROOT {
            return false;
        }
        match self.expanded.get_mut(g) {
            Some(e) if *e != on => {
                *e = on;
                true
            }
            _ => false,
        }
    }

    /// Expands every group.
    pub fn expand_all(&mut self) {
        self.expanded.iter_mut().for_each(|e| *e = true);
    }

    /// Expands every ancestor group of `node` so that it is drawn as itself. Returns whether
    /// anything changed.
    pub fn reveal(&mut self, node: usize) -> bool {
        if node >= self.node_group.len() {
            return false;
        }
        let mut changed = false;
        let mut g = Some(self.group_of(node));
        while let Some(id) = g {
            changed |= self.set_expanded(id, true);
            g = self.groups.get(id).and_then(|x| x.parent);
        }
        changed
    }

    /// Collapses groups so that about `budget` items are visible: starting with every group
    /// below the root collapsed, expands the largest visible groups first while the visible
    /// count stays within the budget (or, while fewer than [`MIN_VISIBLE`] items would show,
    /// within [`HARD_CAP`]). Deterministic.
    pub fn auto_collapse(&mut self, budget: usize) {
        for (g, e) in self.expanded.iter_mut().enumerate() {
            *e = g == Self::ROOT;
        }
        let root = &self.groups[Self::ROOT];
        let mut visible = root.nodes.len() + root.groups.len();
        let mut heap: BinaryHeap<(usize, std::cmp::Reverse<usize>)> = root
            .groups
            .iter()
            .map(|&c| (self.groups[c].total, std::cmp::Reverse(c)))
            .collect();
        while let Some((_, std::cmp::Reverse(g))) = heap.pop() {
            let grp = &self.groups[g];
            let after = visible + grp.nodes.len() + grp.groups.len() - 1;
            // Within the budget; or, while the view would show almost nothing, up to a hard cap
            // (a model whose only top-level group holds 1,300 blocks opens with those blocks).
            let fits = after <= budget || (visible < MIN_VISIBLE && after <= HARD_CAP);
            if !fits {
                continue;
            }
            visible = after;
            self.expanded[g] = true;
            for &c in &grp.groups {
                heap.push((self.groups[c].total, std::cmp::Reverse(c)));
            }
        }
    }

    /// For each group, the outermost collapsed group among itself and its ancestors.
    fn collapsed_rep(&self) -> Vec<Option<usize>> {
        let mut rep: Vec<Option<usize>> = vec![None; self.groups.len()];
        // Parents are always created before their children, so one forward pass suffices.
        for g in 1..self.groups.len() {
            let from_parent = self.groups[g].parent.and_then(|p| rep[p]);
            rep[g] = from_parent.or(if self.expanded[g] { None } else { Some(g) });
        }
        rep
    }

    /// The visible graph of `data` under the current collapse state. `data` must be the graph
    /// this hierarchy was built from.
    pub fn visible(&self, data: &GraphData) -> VisGraph {
        let rep = self.collapsed_rep();
        let mut group_item: Vec<Option<usize>> = vec![None; self.groups.len()];
        let mut vis = VisGraph::default();
        vis.node_item.reserve(data.nodes.len());
        for n in 0..data.nodes.len() {
            let g = self.group_of(n);
            let item = match rep.get(g).copied().flatten() {
                Some(c) => match group_item[c] {
                    Some(it) => it,
                    None => {
                        let it = vis.items.len();
                        vis.items.push(VisItem::Group(c));
                        vis.item_count.push(0);
                        group_item[c] = Some(it);
                        it
                    }
                },
                None => {
                    vis.items.push(VisItem::Node(n));
                    vis.item_count.push(0);
                    vis.items.len() - 1
                }
            };
            vis.item_count[item] += 1;
            vis.node_item.push(item);
        }
        let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
        for (e, edge) in data.edges.iter().enumerate() {
            let (Some(&a), Some(&b)) = (vis.node_item.get(edge.from), vis.node_item.get(edge.to))
            else {
                continue;
            };
            if a == b {
                continue;
            }
            match seen.get(&(a, b)) {
                Some(&k) => vis.edges[k].count += 1,
                None => {
                    seen.insert((a, b), vis.edges.len());
                    vis.edges.push(VisEdge {
                        from: a,
                        to: b,
                        edge: e,
                        count: 1,
                    });
                }
            }
        }
        vis
    }
}

//! Hierarchy: groups from paths, collapse merges edges (counts, no self-loops), default
//! collapse stays within its budget, `reveal` expands the ancestors of a node.

use petasos_viewer::graph::hierarchy::{Hierarchy, VisItem, HARD_CAP};
use petasos_viewer::graph::{synth, GEdge, GNode, GraphData};

/// x, y in /a/b; z in /a; c at the top level.
fn small() -> GraphData {
    let node = |label: &str, path: &str| GNode {
        label: label.into(),
        op_type: "Op".into(),
        path: path.into(),
    };
    let e = |from, to| GEdge {
        from,
        to,
        label: format!("t{from}{to}"),
    };
    GraphData {
        nodes: vec![
            node("x", "/a/b/x"),
            node("y", "/a/b/y"),
            node("z", "/a/z"),
            node("c", "/c"),
        ],
        edges: vec![e(0, 1), e(1, 2), e(0, 2), e(2, 3), e(3, 0), e(7, 1)],
    }
}

fn group(h: &Hierarchy, path: &str) -> usize {
    h.groups()
        .iter()
        .position(|g| g.path == path)
        .unwrap_or_else(|| panic!("no group {path}"))
}

#[test]
fn groups_come_from_shared_path_prefixes() {
    let h = Hierarchy::new(&small());
    let paths: Vec<&str> = h.groups().iter().map(|g| g.path.as_str()).collect();
    // Single-node prefixes (/a/b/x, /a/z, /c) are not groups.
    assert_eq!(paths, vec!["", "/a", "/a/b"]);
    let (a, ab) = (group(&h, "/a"), group(&h, "/a/b"));
    assert_eq!(h.groups()[a].total, 3);
    assert_eq!(h.groups()[ab].total, 2);
    assert_eq!(h.groups()[ab].parent, Some(a));
    assert_eq!(h.group_of(0), ab);
    assert_eq!(h.group_of(2), a);
    assert_eq!(h.group_of(3), Hierarchy::ROOT);
}

#[test]
fn expanded_graph_is_the_graph() {
    let g = small();
    let v = Hierarchy::new(&g).visible(&g);
    assert_eq!(v.items, (0..4).map(VisItem::Node).collect::<Vec<_>>());
    // The out-of-range edge (7 -> 1) is dropped, the rest kept one-to-one.
    assert_eq!(v.edges.len(), 5);
    assert!(v.edges.iter().all(|e| e.count == 1));
}

#[test]
fn collapsing_merges_edges() {
    let g = small();
    let mut h = Hierarchy::new(&g);
    let ab = group(&h, "/a/b");
    assert!(h.set_expanded(ab, false));
    let v = h.visible(&g);
    assert_eq!(
        v.items,
        vec![VisItem::Group(ab), VisItem::Node(2), VisItem::Node(3)]
    );
    assert_eq!(v.item_count, vec![2, 1, 1]);
    assert_eq!(v.node_item, vec![0, 0, 1, 2]);
    // x->y is inside the group (dropped); y->z and x->z merge into one edge of count 2.
    let find = |a, b| v.edges.iter().find(|e| e.from == a && e.to == b);
    assert_eq!(find(0, 1).map(|e| e.count), Some(2));
    assert_eq!(find(1, 2).map(|e| e.count), Some(1));
    assert_eq!(find(2, 0).map(|e| e.count), Some(1)); // c -> x
    assert_eq!(v.edges.len(), 3);
    assert!(v.edges.iter().all(|e| e.from != e.to));
    // The merged edge remembers its first original edge (y -> z is edge 1).
    assert_eq!(find(0, 1).map(|e| e.edge), Some(1));

    // Collapsing the outer group hides the inner one too.
    let a = group(&h, "/a");
    h.set_expanded(a, false);
    let v = h.visible(&g);
    assert_eq!(v.items, vec![VisItem::Group(a), VisItem::Node(3)]);
    assert_eq!(v.item_count, vec![3, 1]);
    assert_eq!(v.edges.len(), 2); // /a -> c and c -> /a
                                  // The root cannot be collapsed.
    assert!(!h.set_expanded(Hierarchy::ROOT, false));
}

#[test]
fn reveal_expands_ancestors() {
    let g = small();
    let mut h = Hierarchy::new(&g);
    let (a, ab) = (group(&h, "/a"), group(&h, "/a/b"));
    h.set_expanded(a, false);
    h.set_expanded(ab, false);
    let v = h.visible(&g);
    assert!(matches!(v.items[v.node_item[1]], VisItem::Group(_)));
    assert!(h.reveal(1));
    let v = h.visible(&g);
    assert_eq!(v.items[v.node_item[1]], VisItem::Node(1));
    assert!(h.is_expanded(a) && h.is_expanded(ab));
    assert!(!h.reveal(1), "nothing left to expand");
}

#[test]
fn default_collapse_opens_a_huge_graph_with_a_few_hundred_boxes() {
    let g = synth::residual_chain(50_000);
    let mut h = Hierarchy::new(&g);
    h.auto_collapse(300);
    let v = h.visible(&g);
    eprintln!("residual chain 50k: {} boxes", v.items.len());
    assert!(
        v.items.len() <= 300 && v.items.len() >= 100,
        "{}",
        v.items.len()
    );
    assert_eq!(v.item_count.iter().sum::<usize>(), g.nodes.len());

    // A single top-level group is opened even past the budget (up to the hard cap).
    let g = synth::transformer(50_000, 8);
    let mut h = Hierarchy::new(&g);
    h.auto_collapse(300);
    let v = h.visible(&g);
    eprintln!("transformer 50k: {} boxes", v.items.len());
    assert!(
        v.items.len() > 300 && v.items.len() <= HARD_CAP,
        "{}",
        v.items.len()
    );
    assert_eq!(v.item_count.iter().sum::<usize>(), g.nodes.len());
}

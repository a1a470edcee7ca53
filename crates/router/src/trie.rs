//! Segment trie for one host table.
//!
//! This module owns the data structure behind each host table of a
//! [`RouteTable`](crate::RouteTable): insertion with conflict detection,
//! and the most-specific-match search with backtracking.
//!
//! Each node is reached by consuming path segments from the root; it has
//! static children (looked up by binary search), at most one `{param}`
//! child, and the exact and prefix routes that end at it. The search
//! explores every node reachable by the path and picks, among routes that
//! accept the request, the one at the deepest node; at equal depth the
//! earliest in depth-first, static-before-param order (i.e. a static
//! segment beats a parameter at the leftmost position where they differ);
//! within a node, exact routes before prefix routes, then more header
//! conditions first, then configuration order.

use crate::error::{BuildError, ConflictReason};
use crate::pattern::Segment;
use crate::table::Route;

#[derive(Debug)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    /// Sorted by segment text after [`Trie::finish`].
    statics: Vec<(Box<str>, usize)>,
    param: Option<ParamEdge>,
    /// Route ids (positions in the route list) ending here, exact kind.
    exact: Vec<usize>,
    /// Route ids ending here, prefix kind.
    prefix: Vec<usize>,
}

#[derive(Debug)]
struct ParamEdge {
    name: Box<str>,
    /// Route id that introduced this edge (for conflict messages).
    owner: usize,
    child: usize,
}

/// A winning route: its id and the byte offset in the path where the
/// matched pattern ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) route: usize,
    pub(crate) end: usize,
    depth: usize,
}

/// One request being matched.
pub(crate) struct Query<'a, 'q, 'h, T> {
    pub(crate) routes: &'a [Route<T>],
    pub(crate) path: &'q str,
    pub(crate) method: &'q str,
    pub(crate) header: &'q dyn Fn(&str) -> Option<&'h str>,
    /// Set when some route matched path and headers but not the method.
    pub(crate) method_mismatch: bool,
}

impl<T> Query<'_, '_, '_, T> {
    fn headers_match(&self, route: &Route<T>) -> bool {
        route
            .headers
            .iter()
            .all(|(name, value)| match name.strip_prefix('!') {
                Some(absent) => (self.header)(absent).is_none(),
                None => (self.header)(name) == Some(&**value),
            })
    }

    fn accepts(&mut self, id: usize) -> bool {
        let Some(route) = self.routes.get(id) else {
            return false;
        };
        if !self.headers_match(route) {
            return false;
        }
        if route.methods.is_empty() || route.methods.iter().any(|m| **m == *self.method) {
            return true;
        }
        self.method_mismatch = true;
        false
    }
}

/// Split the next segment off `path[off..]`, which is either empty (no more
/// segments) or starts with `/`. Returns the segment and the offset after it.
pub(crate) fn next_segment(path: &str, off: usize) -> Option<(&str, usize)> {
    let after = path.get(off..)?.strip_prefix('/')?;
    let seg = match after.find('/') {
        Some(i) => after.get(..i)?,
        None => after,
    };
    Some((seg, off + 1 + seg.len()))
}

impl Trie {
    pub(crate) fn new() -> Self {
        Trie {
            nodes: vec![Node::default()],
        }
    }

    fn add_node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    /// Insert route `id` into this table (described by `scope` for errors),
    /// rejecting conflicts with routes already present.
    pub(crate) fn insert<T>(
        &mut self,
        routes: &[Route<T>],
        id: usize,
        scope: &str,
    ) -> Result<(), BuildError> {
        let route = &routes[id];
        let mut node = 0;
        for (pos, segment) in route.parsed.segments.iter().enumerate() {
            node = match segment {
                Segment::Static(text) => {
                    let found = self.nodes[node]
                        .statics
                        .iter()
                        .find(|(t, _)| t == text)
                        .map(|&(_, child)| child);
                    match found {
                        Some(child) => child,
                        None => {
                            let child = self.add_node();
                            self.nodes[node].statics.push((text.clone(), child));
                            child
                        }
                    }
                }
                Segment::Param(name) => match &self.nodes[node].param {
                    Some(edge) if edge.name == *name => edge.child,
                    Some(edge) => {
                        let other = &routes[edge.owner];
                        return Err(conflict(
                            route,
                            other,
                            ConflictReason::ParamName {
                                position: pos + 1,
                                name: name.to_string(),
                                other_name: edge.name.to_string(),
                                scope: scope.to_string(),
                            },
                        ));
                    }
                    None => {
                        let child = self.add_node();
                        self.nodes[node].param = Some(ParamEdge {
                            name: name.clone(),
                            owner: id,
                            child,
                        });
                        child
                    }
                },
            };
        }
        let (list, kind) = if route.parsed.exact {
            (&mut self.nodes[node].exact, "exact")
        } else {
            (&mut self.nodes[node].prefix, "prefix")
        };
        for &other_id in list.iter() {
            let other = &routes[other_id];
            if other.headers != route.headers {
                continue;
            }
            if let Some(methods) = method_overlap(&route.methods, &other.methods) {
                return Err(conflict(
                    route,
                    other,
                    ConflictReason::Duplicate {
                        kind,
                        scope: scope.to_string(),
                        methods,
                    },
                ));
            }
        }
        list.push(id);
        Ok(())
    }

    /// Prepare for matching: sort static children for binary search and
    /// order each node's routes by header-condition count (descending),
    /// keeping configuration order among equals.
    pub(crate) fn finish<T>(&mut self, routes: &[Route<T>]) {
        let weight = |id: &usize| std::cmp::Reverse(routes[*id].headers.len());
        for node in &mut self.nodes {
            node.statics.sort_by(|a, b| a.0.cmp(&b.0));
            node.exact.sort_by_key(weight);
            node.prefix.sort_by_key(weight);
        }
    }

    /// The most specific route that accepts the request, searching from byte
    /// offset `start` of the path.
    pub(crate) fn best<T>(
        &self,
        query: &mut Query<'_, '_, '_, T>,
        start: usize,
    ) -> Option<Candidate> {
        self.best_at(query, 0, start, 0)
    }

    fn best_at<T>(
        &self,
        query: &mut Query<'_, '_, '_, T>,
        node_id: usize,
        off: usize,
        depth: usize,
    ) -> Option<Candidate> {
        let node = self.nodes.get(node_id)?;
        let mut best = None;
        if let Some((seg, next)) = next_segment(query.path, off) {
            if let Ok(i) = node.statics.binary_search_by(|(t, _)| (**t).cmp(seg))
                && let Some(&(_, child)) = node.statics.get(i)
            {
                best = self.best_at(query, child, next, depth + 1);
            }
            if let Some(edge) = &node.param
                && !seg.is_empty()
                && let Some(found) = self.best_at(query, edge.child, next, depth + 1)
                && best.is_none_or(|b: Candidate| found.depth > b.depth)
            {
                best = Some(found);
            }
        }
        if best.is_some() {
            // Anything found below is deeper than this node.
            return best;
        }
        let candidate = |route| Candidate {
            route,
            end: off,
            depth,
        };
        if off >= query.path.len()
            && let Some(&id) = node.exact.iter().find(|&&id| query.accepts(id))
        {
            return Some(candidate(id));
        }
        node.prefix
            .iter()
            .find(|&&id| query.accepts(id))
            .map(|&id| candidate(id))
    }

    /// Add to `allow` the methods of every route that matches the path and
    /// headers (used to build a `405` answer).
    pub(crate) fn collect_allowed<'a, T>(
        &self,
        query: &Query<'a, '_, '_, T>,
        start: usize,
        allow: &mut Vec<&'a str>,
    ) {
        self.collect_at(query, 0, start, allow);
    }

    fn collect_at<'a, T>(
        &self,
        query: &Query<'a, '_, '_, T>,
        node_id: usize,
        off: usize,
        allow: &mut Vec<&'a str>,
    ) {
        let Some(node) = self.nodes.get(node_id) else {
            return;
        };
        let at_end = off >= query.path.len();
        let ids = node
            .prefix
            .iter()
            .chain(node.exact.iter().filter(|_| at_end));
        for &id in ids {
            if let Some(route) = query.routes.get(id)
                && query.headers_match(route)
            {
                allow.extend(route.methods.iter().map(|m| &**m));
            }
        }
        if let Some((seg, next)) = next_segment(query.path, off) {
            if let Ok(i) = node.statics.binary_search_by(|(t, _)| (**t).cmp(seg))
                && let Some(&(_, child)) = node.statics.get(i)
            {
                self.collect_at(query, child, next, allow);
            }
            if let Some(edge) = &node.param
                && !seg.is_empty()
            {
                self.collect_at(query, edge.child, next, allow);
            }
        }
    }
}

fn conflict<T>(route: &Route<T>, other: &Route<T>, reason: ConflictReason) -> BuildError {
    BuildError::Conflict {
        index: route.index,
        pattern: route.pattern.to_string(),
        other_index: other.index,
        other_pattern: other.pattern.to_string(),
        reason: Box::new(reason),
    }
}

/// Overlapping methods of two routes (empty = all methods), described for
/// an error message, or `None` if they are disjoint.
fn method_overlap(a: &[Box<str>], b: &[Box<str>]) -> Option<String> {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Some("all methods".to_string()),
        (true, false) => Some(b.join(", ")),
        (false, true) => Some(a.join(", ")),
        (false, false) => {
            let shared: Vec<&str> = a.iter().filter(|m| b.contains(m)).map(|m| &**m).collect();
            (!shared.is_empty()).then(|| shared.join(", "))
        }
    }
}

//! Route-table build errors.
//!
//! This module owns [`BuildError`] and [`ConflictReason`]: everything that
//! can go wrong while turning [`RouteSpec`](crate::RouteSpec)s into a
//! [`RouteTable`](crate::RouteTable). Every error carries the index of the
//! offending spec (the order of [`add`](crate::RouteTableBuilder::add)
//! calls, starting at 0) and its pattern, so callers can map it back to a
//! configuration location.

use crate::pattern::PatternError;

/// Why a route spec could not be added, or the table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The pattern is malformed.
    #[error("route #{index} `{pattern}`: invalid pattern: {source}")]
    Pattern {
        /// Index of the offending spec.
        index: usize,
        /// The pattern as configured.
        pattern: String,
        /// What is wrong with it.
        source: PatternError,
    },
    /// A method is not a valid HTTP method token.
    #[error("route #{index} `{pattern}`: invalid method `{method}`")]
    InvalidMethod {
        /// Index of the offending spec.
        index: usize,
        /// The pattern as configured.
        pattern: String,
        /// The method as configured.
        method: String,
    },
    /// A host entry is malformed.
    #[error("route #{index} `{pattern}`: invalid host `{host}`: {reason}")]
    InvalidHost {
        /// Index of the offending spec.
        index: usize,
        /// The pattern as configured.
        pattern: String,
        /// The host as configured.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header condition is malformed.
    #[error("route #{index} `{pattern}`: invalid header condition `{name}`: {reason}")]
    InvalidHeader {
        /// Index of the offending spec.
        index: usize,
        /// The pattern as configured.
        pattern: String,
        /// The header name as configured.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two routes would compete for the same requests.
    #[error(
        "route #{index} `{pattern}` conflicts with route #{other_index} `{other_pattern}`: {reason}"
    )]
    Conflict {
        /// Index of the later spec (the one being inserted).
        index: usize,
        /// Its pattern as configured.
        pattern: String,
        /// Index of the earlier spec it conflicts with.
        other_index: usize,
        /// That spec's pattern as configured.
        other_pattern: String,
        /// How they conflict (boxed to keep `BuildError` small).
        reason: Box<ConflictReason>,
    },
}

impl BuildError {
    /// Index of the offending spec (for a conflict: the later of the two).
    pub fn index(&self) -> usize {
        match self {
            BuildError::Pattern { index, .. }
            | BuildError::InvalidMethod { index, .. }
            | BuildError::InvalidHost { index, .. }
            | BuildError::InvalidHeader { index, .. }
            | BuildError::Conflict { index, .. } => *index,
        }
    }

    /// For a conflict, the index of the earlier spec involved.
    pub fn other_index(&self) -> Option<usize> {
        match self {
            BuildError::Conflict { other_index, .. } => Some(*other_index),
            _ => None,
        }
    }
}

/// How two routes conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConflictReason {
    /// Same path shape and kind, same host table, identical header
    /// conditions and overlapping methods: neither could ever be preferred.
    #[error(
        "both are {kind} routes for the same path on {scope} with identical header \
         conditions and overlapping methods ({methods})"
    )]
    Duplicate {
        /// `"exact"` or `"prefix"`.
        kind: &'static str,
        /// The shared host table, e.g. ``host `api.example.com` `` or
        /// `any host`.
        scope: String,
        /// The overlapping methods, e.g. `GET, POST` or `all methods`.
        methods: String,
    },
    /// Two different parameter names bind the same path segment.
    #[error(
        "parameters `{{{name}}}` and `{{{other_name}}}` bind the same path segment \
         (segment {position}) on {scope}; use the same parameter name"
    )]
    ParamName {
        /// 1-based segment position in the pattern.
        position: usize,
        /// The name in the later route.
        name: String,
        /// The name in the earlier route.
        other_name: String,
        /// The shared host table.
        scope: String,
    },
}

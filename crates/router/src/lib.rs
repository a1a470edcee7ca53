//! Request routing for Tollgate: path normalisation and the route table.
//!
//! This crate is pure (no I/O, no async) and sits on the hot path: the
//! gateway calls [`normalize_path`] and [`RouteTable::find`] once per
//! proxied request. The table is built once from configuration with
//! [`RouteTableBuilder`] and is immutable afterwards.
//!
//! # Modules
//!
//! * `normalize` — canonical request paths ([`normalize_path`], [`PathError`]).
//! * `pattern` — the route-pattern grammar ([`validate_pattern`], [`PatternError`]).
//! * `host` — canonical host names for host-restricted routes.
//! * `table` — the public routing API ([`RouteSpec`], [`RouteTableBuilder`],
//!   [`RouteTable`], [`Match`], [`Found`]).
//! * `trie` — the per-host segment trie and the most-specific-match search.
//! * `error` — build errors ([`BuildError`], [`ConflictReason`]).
//!
//! # Patterns
//!
//! * `/v1/orders` — a **prefix** route: matches `/v1/orders`, `/v1/orders/`
//!   and `/v1/orders/42/items`, but not `/v1/ordersX`.
//! * `/v1/orders/{id}` — `{name}` binds exactly one non-empty segment; still
//!   a prefix route.
//! * `=/v1/ping` — **exact**: matches only `/v1/ping` (not `/v1/ping/`).
//! * `/` — the catch-all prefix route; `=/` matches only `/`.
//!
//! Patterns may not contain empty segments (so no trailing `/` except the
//! root), `.`/`..` segments, or characters outside RFC 3986 `pchar`.
//!
//! # Precedence
//!
//! Within one host table the most specific route accepting the request
//! wins: deeper matches beat shallower ones; at equal depth a static
//! segment beats a `{param}` at the leftmost position where they differ;
//! at the same node an exact route beats a prefix route, and routes with
//! more header conditions come first. If the most specific route rejects
//! the method or headers, the next less specific one is tried.
//!
//! # Example
//!
//! ```
//! use tollgate_router::{Match, RouteSpec, RouteTableBuilder, no_headers, normalize_path};
//!
//! let mut builder = RouteTableBuilder::new();
//! builder.add(RouteSpec::new("/v1/orders/{id}", "order").methods(["GET"]))?;
//! builder.add(RouteSpec::new("/v1", "v1").methods(["GET", "POST"]))?;
//! builder.add(RouteSpec::new("=/ping", "ping").hosts(["*.example.com"]))?;
//! let table = builder.build()?;
//!
//! let path = normalize_path("/v1//orders/%34%32/./items")?;
//! assert_eq!(path, "/v1/orders/42/items");
//!
//! match table.find(Some("API.example.com:8443"), "GET", &path, &no_headers) {
//!     Match::Found(found) => {
//!         assert_eq!(*found.value, "order");
//!         assert_eq!(found.param("id"), Some("42"));
//!         assert_eq!(found.rest, "/items");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//!
//! // `/v1/orders/{id}` rejects POST, so the less specific `/v1` takes it.
//! let m = table.find(None, "POST", &path, &no_headers);
//! assert!(matches!(m, Match::Found(f) if *f.value == "v1" && f.rest == "/orders/42/items"));
//!
//! // No route accepts DELETE: 405 with the methods that would be routed.
//! let m = table.find(None, "DELETE", &path, &no_headers);
//! assert_eq!(m, Match::MethodNotAllowed { allow: vec!["GET", "POST"] });
//!
//! // Host-restricted routes need a matching host.
//! assert!(matches!(table.find(Some("www.example.com"), "GET", "/ping", &no_headers), Match::Found(_)));
//! assert_eq!(table.find(None, "GET", "/ping", &no_headers), Match::NotFound);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod host;
mod normalize;
mod pattern;
mod table;
mod trie;

pub use error::{BuildError, ConflictReason};
pub use normalize::{PathError, normalize_path};
pub use pattern::{PatternError, validate_pattern};
pub use table::{Found, Match, RouteSpec, RouteTable, RouteTableBuilder, no_headers};

//! The service behind the DynamoDB 2025 incident's endpoint, and its clients.
//!
//! * [`service`]: a small key-value HTTP service, one instance per load balancer address.
//! * [`client`]: a client that resolves the endpoint through a lab DNS server with a real
//!   resolver cache, keeps a connection pool, and tells its successes and failures each second;
//!   customers and internal dependents are both this client, with their own kind.
//! * `serve_stale`: the fix of the same name (RFC 8767), a mechanism of the client's resolver.
//! * [`roles`]: the service and a client as the processes of a run run them.

pub mod client;
pub mod roles;
mod serve_stale;
pub mod service;

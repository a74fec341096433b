//! End-to-end journeys against a real quickmeetd: real TLS (trusting the daemon's own CA,
//! never "accept invalid certificates"), real redb in a temp data dir, real HTTP and
//! WebSocket clients. `util` spawns the daemon in-process on 127.0.0.1:0, or as a child
//! process where a test needs to kill it.

mod accounts;
mod admin;
mod authz;
mod calls;
mod chat;
mod crash;
mod drills;
mod files;
mod gateway;
mod hardening;
mod kill9;
mod landing;
mod limits;
mod rtc;
mod util;

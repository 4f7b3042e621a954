//! updraft-server integration tests: the real server on an ephemeral port.

mod admin;
mod announce;
mod api;
mod autohalt;
mod dashboard;
mod files;
mod hardening;
mod openapi;
mod outage;
mod signing;
mod storage;
mod support;

//! Integration tests: the real server on port 0, driven over real sockets.
//! One test binary with modules, so it links once.

mod accounts;
mod admin;
mod api;
mod autobahn;
mod backup;
mod changes;
mod chaos;
mod clients;
mod cluster;
mod conformance;
mod connections;
mod faults;
mod faults_accounts;
mod faults_support;
mod files;
mod files_in_messages;
mod heartbeat;
mod layers;
mod limits;
mod membership;
mod membership_races;
mod messages;
#[path = "../shared/ports.rs"]
mod ports;
#[path = "../shared/postgres_install.rs"]
mod postgres_install;
mod presence;
mod read_state;
mod replay;
mod resume;
mod rooms;
mod rooms_lifecycle;
mod shutdown;
mod signin_page;
mod store;
mod support;
mod web;
mod webhooks;
mod websocket;

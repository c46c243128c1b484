//! The DNS front end: sockets, hickory's server loop and veer's handler.

pub mod answer;
pub mod fast;
pub mod handler;
mod listen;
pub mod tcp;
pub mod udp;

pub use handler::Handler;
pub use listen::{Listeners, bind};

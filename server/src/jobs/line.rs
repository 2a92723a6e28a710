//! Each waiting job's place in its line: the waiting jobs ahead of it that need one of the
//! same model servers (a job for a model only another server has is not in its way), and
//! what it waits for.
use std::collections::HashMap;

use app::types::WaitingFor;

use super::queue::Queue;
use crate::pool::{Assessment, Pool};

/// Where one waiting job stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    /// 1 for the next job of its line.
    pub position: u32,
    pub waiting_for: WaitingFor,
    /// Since when every server for it has been unreachable, while that is what it waits for.
    pub unreachable_since: Option<i64>,
}

/// Every waiting job's place, head of the queue first.
pub fn places(pool: &Pool, queue: &Queue) -> Vec<(i64, Place)> {
    let mut assessed: HashMap<&str, Assessment> = HashMap::new();
    let mut ahead: Vec<&str> = Vec::new();
    let mut places = Vec::new();
    for (id, model) in queue.waiting_models() {
        let position = 1 + ahead
            .iter()
            .filter(|&&other| pool.share_a_server(other, model))
            .count();
        let assessment = assessed
            .entry(model)
            .or_insert_with(|| pool.assess(model))
            .clone();
        let (waiting_for, unreachable_since) = match assessment {
            Assessment::Down { backends, since } => (WaitingFor::Server { backends }, since),
            _ if position > 1 => (WaitingFor::Turn, None),
            // With one server there is nothing to say beyond the place in line.
            Assessment::Busy { backends } if pool.members().len() > 1 => {
                (WaitingFor::Slot { backends }, None)
            }
            Assessment::Busy { .. } => (WaitingFor::Turn, None),
            // A free server, or none at all: dispatch takes it up at once.
            Assessment::Free | Assessment::Nowhere => (WaitingFor::Turn, None),
        };
        places.push((
            id,
            Place {
                position: u32::try_from(position).unwrap_or(u32::MAX),
                waiting_for,
                unreachable_since,
            },
        ));
        ahead.push(model);
    }
    places
}

//! [`Slot`]: a generation's hold on one of a model server's places, given back when dropped.
use std::{fmt, sync::Arc};

use super::Member;

pub struct Slot {
    member: Arc<Member>,
}

impl Slot {
    /// One of `member`'s places for a job of `model`, if it is reachable and has one free.
    pub(super) fn take(member: &Arc<Member>, model: &str) -> Option<Self> {
        member.take_slot(model).then(|| Self {
            member: Arc::clone(member),
        })
    }

    /// The server the slot is on.
    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.member.free_slot();
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("backend", &self.member.name)
            .finish()
    }
}

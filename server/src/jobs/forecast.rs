//! When each waiting job will start: the real dispatch played forward. The model servers'
//! slots free up as their running jobs end; down the line in its real order, each job takes
//! the first slot to free up on a server that can run it, and holds it for its expected
//! duration. A job whose duration nobody can tell yet (no history) leaves its slot's future
//! unknown, and every job that would wait for that slot with it.

/// One waiting job, as the forecast sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Ahead {
    pub id: i64,
    /// The servers (by name) that can run it.
    pub servers: Vec<String>,
    /// How long it is expected to run, in milliseconds.
    pub duration_ms: Option<f64>,
}

/// A model server's slots: its name, how many jobs it runs at once, and the milliseconds
/// until each running job is expected to end (`None`: unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub name: String,
    pub slots: u32,
    pub running: Vec<Option<f64>>,
}

/// Milliseconds from now until each waiting job (in `line`'s order, head first) is expected
/// to start; `None` when it cannot be told.
pub fn starts(servers: &[Server], line: &[Ahead]) -> Vec<(i64, Option<f64>)> {
    // Every slot: (server, free in ms or unknown).
    let mut slots: Vec<(&str, Option<f64>)> = servers
        .iter()
        .flat_map(|server| {
            let slots = usize::try_from(server.slots).unwrap_or(usize::MAX);
            let free = server.running.len().min(slots);
            server.running[..free]
                .iter()
                .copied()
                .chain(std::iter::repeat_n(Some(0.0), slots - free))
                .map(move |ends| (server.name.as_str(), ends))
        })
        .collect();
    line.iter()
        .map(|job| {
            let first = slots
                .iter_mut()
                .filter(|(name, _)| job.servers.iter().any(|s| s == name))
                .min_by(|(_, a), (_, b)| match (a, b) {
                    (Some(a), Some(b)) => a.total_cmp(b),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                });
            let Some((_, free)) = first else {
                return (job.id, None);
            };
            let start = *free;
            *free = start.zip(job.duration_ms).map(|(at, d)| at + d);
            (job.id, start)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, servers: &[&str], duration_ms: Option<f64>) -> Ahead {
        Ahead {
            id,
            servers: servers.iter().map(|s| (*s).to_string()).collect(),
            duration_ms,
        }
    }

    #[test]
    fn each_job_takes_the_first_slot_to_free_up_on_a_server_that_can_run_it() {
        let servers = [
            Server {
                name: "a".into(),
                slots: 2,
                running: vec![Some(10_000.0)],
            },
            Server {
                name: "b".into(),
                slots: 1,
                running: vec![Some(3_000.0)],
            },
        ];
        let line = [
            job(1, &["a", "b"], Some(5_000.0)), // a's free slot: now
            job(2, &["a", "b"], Some(5_000.0)), // b in 3 s
            job(3, &["b"], Some(1_000.0)),      // b after 2: 8 s
            job(4, &["a"], Some(1_000.0)),      // a's first free: 5 s
            job(5, &["c"], Some(1_000.0)),      // nowhere
        ];
        assert_eq!(
            starts(&servers, &line),
            [
                (1, Some(0.0)),
                (2, Some(3_000.0)),
                (3, Some(8_000.0)),
                (4, Some(5_000.0)),
                (5, None)
            ]
        );
    }

    #[test]
    fn a_job_of_unknown_length_leaves_what_waits_for_its_slot_unknown() {
        let servers = [Server {
            name: "a".into(),
            slots: 1,
            running: vec![None],
        }];
        let line = [job(1, &["a"], Some(1.0))];
        assert_eq!(starts(&servers, &line), [(1, None)]);
        let servers = [Server {
            name: "a".into(),
            slots: 2,
            running: vec![],
        }];
        let line = [
            job(1, &["a"], None),
            job(2, &["a"], Some(4_000.0)),
            job(3, &["a"], Some(1.0)),
        ];
        assert_eq!(
            starts(&servers, &line),
            [(1, Some(0.0)), (2, Some(0.0)), (3, Some(4_000.0))]
        );
    }
}

//! Every interleaving of a few clients' actions with the deliveries they cause.

use super::Sim;

/// One step of an exploration: the next action of a client, or one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The next action of actor `i`.
    Act(usize),
    /// The oldest message from `from` to `to`.
    Deliver(usize, usize),
}

/// A client action of an exploration.
pub type Action = Box<dyn Fn(&mut Sim)>;

/// A client of an exploration: the worker its connections are on, and its actions in order.
pub type Actor = (usize, Vec<Action>);

/// User `u`'s two tabs, `tab1` on worker 1 (joins `room`, then closes) and `tab2` on worker 2
/// (joins, then its socket is gone), as the actors of an exploration.
pub fn two_tabs_of_u(tab1: super::Conn, tab2: super::Conn, room: String) -> Vec<Actor> {
    let (r1, r2) = (room.clone(), room);
    vec![
        (
            1,
            vec![
                Box::new(move |s: &mut Sim| s.subscribe_presence(tab1, &r1, "u")),
                Box::new(move |s: &mut Sim| s.close(tab1)),
            ],
        ),
        (
            2,
            vec![
                Box::new(move |s: &mut Sim| s.subscribe_presence(tab2, &r2, "u")),
                Box::new(move |s: &mut Sim| s.drop_conn(tab2)),
            ],
        ),
    ]
}

/// Runs every interleaving of the actors' actions (each actor's in its order) with the
/// deliveries of every message they cause, each from a fresh `setup()` (which returns the
/// simulation, with its messages delivered, and the actors). The simulation checks its views
/// after every step and its facts whenever it is quiet; `leaf` checks what the test wants once
/// everything happened. Returns the number of interleavings run to the end.
///
/// Two steps at different workers commute (each changes only its own worker and appends to
/// queues that only it appends to), so interleavings that differ only in the order of such
/// steps reach the same end, and only one of each class is run: a depth-first search with
/// sleep sets (Godefroid's partial-order reduction). Every order in which any one worker takes
/// its inputs is still tried.
pub fn explore(setup: impl Fn() -> (Sim, Vec<Actor>), leaf: impl FnMut(&Sim, &[Choice])) -> usize {
    explore_with(true, setup, leaf)
}

/// [`explore`], with the partial-order reduction (`reduce`) or without it: every
/// interleaving, which is what the reduction is checked against.
pub fn explore_with(
    reduce: bool,
    setup: impl Fn() -> (Sim, Vec<Actor>),
    mut leaf: impl FnMut(&Sim, &[Choice]),
) -> usize {
    let mut leaves = 0;
    // Each node to visit: the steps that reach it, and its sleep set (steps already explored
    // from an equivalent node, with the worker each happens at).
    type Node = (Vec<Choice>, Vec<(Choice, usize)>);
    let mut stack: Vec<Node> = vec![(Vec::new(), Vec::new())];
    while let Some((prefix, sleep)) = stack.pop() {
        let (mut sim, actors) = setup();
        let mut next = vec![0; actors.len()];
        for choice in &prefix {
            match *choice {
                Choice::Act(i) => {
                    (actors[i].1[next[i]])(&mut sim);
                    next[i] += 1;
                }
                Choice::Deliver(from, to) => {
                    assert!(sim.deliver(from, to), "a replay took another path");
                }
            }
        }
        // Each enabled step with the worker it happens at.
        let mut enabled: Vec<(Choice, usize)> = (0..actors.len())
            .filter(|i| next[*i] < actors[*i].1.len())
            .map(|i| (Choice::Act(i), actors[i].0))
            .collect();
        enabled.extend(
            sim.queued()
                .into_iter()
                .map(|(from, to, _)| (Choice::Deliver(from, to), to)),
        );
        if enabled.is_empty() {
            leaves += 1;
            leaf(&sim, &prefix);
            continue;
        }
        let mut done: Vec<(Choice, usize)> = if reduce { sleep } else { Vec::new() };
        let mut children = Vec::new();
        for (c, at) in enabled {
            if done.iter().any(|(s, _)| *s == c) {
                continue;
            }
            let mut p = prefix.clone();
            p.push(c);
            let child_sleep = done.iter().copied().filter(|(_, w)| *w != at).collect();
            children.push((p, child_sleep));
            if reduce {
                done.push((c, at));
            }
        }
        stack.extend(children.into_iter().rev());
    }
    leaves
}

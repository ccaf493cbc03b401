//! Hand-written scenarios: the simulator driven step by step, with faults chosen by hand instead
//! of drawn from a seed. Every scenario runs under the full safety checker (any violation fails
//! it), and most end by requiring convergence.

use std::time::Duration;

use simulations::network::{Cut, Endpoint, Network};
use simulations::options::GroupOptions;
use simulations::redis::Role;
use simulations::{Options, Simulation, Trace};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A quiet cluster of `nodes` nodes with the default `session` group.
fn cluster(nodes: usize) -> Simulation {
    Simulation::new(Options::quiet(1, nodes), Trace::Off)
}

/// Instance `k` of group `g` (k = 0 is the configured master).
fn member(sim: &Simulation, g: usize, k: usize) -> usize {
    sim.groups[g].members[k]
}

/// Every running node names the same master for group `name`, with the same config epoch.
fn agreed_master(sim: &Simulation, name: &str) -> Option<(String, u64)> {
    let beliefs: Vec<_> = (0..sim.nodes.len()).filter_map(|i| sim.belief(i, name)).collect();
    let first = beliefs.first()?.clone();
    beliefs.iter().all(|b| *b == first).then(|| (first.0.to_string(), first.1))
}

/// Exactly `n` promotions were sent so far.
fn expect_promotions(sim: &mut Simulation, n: usize) {
    let sent = sim.checker.promotions_sent;
    if sent != n {
        panic!("{sent} promotions, expected {n}:\n{}", sim.describe());
    }
}

/// Runs until the cluster has converged, failing after `limit`.
fn run_until_converged(sim: &mut Simulation, limit: Duration) {
    let deadline = sim.now + u64::try_from(limit.as_micros()).unwrap();
    loop {
        if sim.converged().is_ok() {
            return;
        }
        if sim.now >= deadline {
            let reason = sim.converged().unwrap_err();
            panic!("not converged: {reason}\n{}", sim.describe());
        }
        sim.run_for(Duration::from_millis(250)).unwrap();
    }
}

#[test]
fn killing_the_master_fails_over_once_and_everyone_agrees() {
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    let old = member(&sim, 0, 0);
    sim.kill_redis(old);
    sim.run_for(secs(10)).unwrap();
    expect_promotions(&mut sim, 1);
    let (addr, epoch) = agreed_master(&sim, "session").expect("the nodes disagree");
    assert_ne!(addr, sim.redis[old].addr.to_string());
    assert!(epoch > 0);
    // The old master comes back (as a master, its config lost) and is made a replica.
    sim.restart_redis(old, true, false);
    run_until_converged(&mut sim, secs(30));
    assert_eq!(sim.checker.promotions_sent, 1);
    assert!(matches!(sim.redis[old].role, Role::Replica(_)));
}

#[test]
fn a_hung_master_is_replaced_then_demoted_when_it_resumes() {
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    let old = member(&sim, 0, 0);
    sim.pause_redis(old);
    sim.run_for(secs(10)).unwrap();
    expect_promotions(&mut sim, 1);
    sim.resume_redis(old);
    run_until_converged(&mut sim, secs(30));
    assert!(matches!(sim.redis[old].role, Role::Replica(_)), "{}", sim.describe());
    assert_eq!(sim.checker.promotions_sent, 1);
}

#[test]
fn two_of_three_nodes_down_means_no_failover() {
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    sim.crash_node(1, true);
    sim.crash_node(2, true);
    sim.kill_redis(member(&sim, 0, 0));
    sim.run_for(secs(60)).unwrap();
    assert_eq!(sim.checker.promotions_sent, 0);
    assert_eq!(sim.checker.attempts_by(0), 0, "a node alone started an election it cannot win");
    // The others come back: now there is a majority, and the failover happens.
    sim.restart_node(1);
    sim.restart_node(2);
    sim.run_for(secs(15)).unwrap();
    expect_promotions(&mut sim, 1);
}

#[test]
fn a_node_cut_off_alone_never_tries_while_the_majority_fails_over() {
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    let master = member(&sim, 0, 0);
    // n0 still reaches the master but no peer; n1 and n2 reach each other but not the master.
    let alone = [Endpoint::Node(0)];
    let others = [Endpoint::Node(1), Endpoint::Node(2)];
    let mut paths = Network::paths_between(&alone, &others, true);
    paths.extend(Network::paths_between(&others, &[Endpoint::Redis(master)], true));
    let id = sim.partition("n0 alone; n1 n2 without the master".into(), paths, Cut::Drop);
    sim.run_for(secs(20)).unwrap();
    expect_promotions(&mut sim, 1);
    assert_eq!(sim.checker.attempts_by(0), 0);
    assert_eq!(sim.belief(0, "session").unwrap().1, 0, "n0 cannot know about the failover yet");
    sim.heal_partition(id);
    run_until_converged(&mut sim, secs(40));
    assert!(matches!(sim.redis[master].role, Role::Replica(_)));
    assert_eq!(sim.checker.attempts_by(0), 0);
}

#[test]
fn a_priority_zero_replica_is_never_promoted() {
    let mut options = Options::quiet(2, 3);
    options.groups[0].priorities = vec![0, 100];
    let mut sim = Simulation::new(options, Trace::Off);
    sim.run_for(secs(3)).unwrap();
    sim.kill_redis(member(&sim, 0, 0));
    sim.run_for(secs(10)).unwrap();
    assert_eq!(sim.checker.promotions_sent, 1);
    let (addr, _) = agreed_master(&sim, "session").unwrap();
    assert_eq!(addr, sim.redis[member(&sim, 0, 2)].addr.to_string());
    // Now the only replica left may never be promoted: no failover, however long.
    sim.kill_redis(member(&sim, 0, 2));
    sim.run_for(secs(60)).unwrap();
    expect_promotions(&mut sim, 1);
    // Each attempt ends in `-failover-abort-no-good-slave` and backs off about a second.
    assert!(sim.max_epoch() < 80, "epochs ran away: {}", sim.max_epoch());
}

#[test]
fn three_masters_fail_over_independently() {
    let mut options = Options::quiet(3, 3);
    for name in ["cache", "realtime"] {
        options.groups.push(GroupOptions { name: name.to_owned(), ..options.groups[0].clone() });
    }
    let mut sim = Simulation::new(options, Trace::Off);
    sim.run_for(secs(3)).unwrap();
    let old: Vec<usize> = (0..3).map(|g| member(&sim, g, 0)).collect();
    for &r in &old {
        sim.kill_redis(r);
    }
    sim.run_for(secs(15)).unwrap();
    expect_promotions(&mut sim, 3);
    for name in ["session", "cache", "realtime"] {
        let (_, epoch) = agreed_master(&sim, name).expect("disagreement");
        assert!(epoch > 0, "{name} did not fail over");
    }
    for &r in &old {
        sim.restart_redis(r, true, true);
    }
    run_until_converged(&mut sim, secs(40));
}

#[test]
fn a_node_restarted_mid_failover_keeps_its_epoch_and_votes() {
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    sim.kill_redis(member(&sim, 0, 0));
    // Wait until some node has made a vote durable, then crash it at once.
    let voted = sim
        .run_until_true(secs(10), |s| {
            s.nodes
                .iter()
                .any(|n| n.disk.as_ref().is_some_and(|d| d.masters["session"].voted_epoch > 0))
        })
        .unwrap();
    assert!(voted);
    let i = (0..3)
        .find(|&i| sim.nodes[i].disk.as_ref().unwrap().masters["session"].voted_epoch > 0)
        .unwrap();
    let before = sim.nodes[i].disk.clone().unwrap();
    sim.crash_node(i, true);
    sim.run_for(Duration::from_millis(300)).unwrap();
    sim.restart_node(i);
    let after = sim.nodes[i].engine.as_ref().unwrap().durable();
    assert_eq!(after.node_id, before.node_id);
    assert!(after.current_epoch >= before.current_epoch);
    assert!(after.masters["session"].voted_epoch >= before.masters["session"].voted_epoch);
    if after.masters["session"].voted_epoch == before.masters["session"].voted_epoch {
        assert_eq!(after.masters["session"].voted_for, before.masters["session"].voted_for);
    }
    // The checker saw every vote sent before and after the crash: no double vote, one leader.
    sim.run_for(secs(10)).unwrap();
    expect_promotions(&mut sim, 1);
}

#[test]
fn a_manual_failover_of_a_healthy_master_needs_and_gets_a_majority() {
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    sim.admin_failover(1, "session");
    sim.run_for(secs(5)).unwrap();
    expect_promotions(&mut sim, 1);
    run_until_converged(&mut sim, secs(30));
    let (addr, epoch) = agreed_master(&sim, "session").unwrap();
    assert_ne!(addr, sim.redis[member(&sim, 0, 0)].addr.to_string());
    assert!(epoch > 0);
}

#[test]
fn a_leader_in_tilt_does_not_repoint_replicas() {
    // Regression (seeds 221, 283): a leader that stalls while its promotion is pending enters
    // TILT on resume, and must not act on the INFO that shows the promotion until TILT ends.
    let mut options = Options::quiet(4, 3);
    options.tilt_period = secs(5);
    let mut sim = Simulation::new(options, Trace::Off);
    sim.run_for(secs(3)).unwrap();
    let master = member(&sim, 0, 0);
    sim.kill_redis(master);
    let promoted = sim.run_until_true(secs(10), |s| s.checker.promotions_sent > 0).unwrap();
    assert!(promoted);
    // Whoever sent the promotion stalls right away; the checker fails the run if it sends
    // REPLICAOF in TILT once it resumes.
    let leader = sim.checker.last_promoter.unwrap();
    sim.stall_node(leader, secs(3));
    sim.run_for(secs(30)).unwrap();
    sim.restart_redis(master, true, true);
    run_until_converged(&mut sim, secs(40));
}

#[test]
fn a_node_back_from_a_partition_does_not_undo_a_failover_it_missed() {
    // Regression (seeds 108, 1034): n0 is cut from its peers while they fail over the master.
    // The old master comes back as a master where only n0 sees it, so n0 (which still believes
    // in it) sees the promoted replica report role:master for longer than any grace. When n0
    // hears from its peers again, it must not demote the new master on the strength of the
    // reports it held from before the partition: it waits for the resync, and adopts.
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    let master = member(&sim, 0, 0);
    let (n0, others) = ([Endpoint::Node(0)], [Endpoint::Node(1), Endpoint::Node(2)]);
    let cut = sim.partition(
        "n0 cut from its peers".into(),
        Network::paths_between(&n0, &others, true),
        Cut::Drop,
    );
    sim.kill_redis(master);
    sim.run_for(secs(8)).unwrap();
    expect_promotions(&mut sim, 1);
    let promoted = agreed_master_of_majority(&sim);
    let hidden = sim.partition(
        "the old master hidden from n1 and n2".into(),
        Network::paths_between(&others, &[Endpoint::Redis(master)], true),
        Cut::Drop,
    );
    sim.restart_redis(master, true, false);
    sim.run_for(secs(12)).unwrap();
    sim.heal_partition(cut);
    sim.run_for(secs(5)).unwrap();
    sim.heal_partition(hidden);
    run_until_converged(&mut sim, secs(40));
    let (addr, _) = agreed_master(&sim, "session").unwrap();
    assert_eq!(addr, promoted, "the failover was undone:\n{}", sim.describe());
}

fn agreed_master_of_majority(sim: &Simulation) -> String {
    let (a, _) = sim.belief(1, "session").unwrap();
    assert_eq!(Some(a.clone()), sim.belief(2, "session").map(|b| b.0));
    a.to_string()
}

#[test]
fn a_master_demoted_behind_the_nodes_back_is_replaced_by_the_master_it_follows() {
    // Regression (seeds 264, 287; 256, 332, 344, 615, 665): every node names r0.0, which now
    // follows r0.1, which reports role:master. The only way out is a failover that records
    // r0.1; replica selection used to exclude every instance reporting role:master. Without
    // fencing: a fenced r0.1 (paused as an unexpected master) takes no writes, every instance
    // then holds the same data, and the choice among them is the run ids'.
    let mut options = Options::quiet(1, 3);
    options.groups[0].fencing = picket::engine::Fencing::Off;
    let mut sim = Simulation::new(options, Trace::Off);
    sim.run_for(secs(3)).unwrap();
    let (old, new) = (member(&sim, 0, 0), member(&sim, 0, 1));
    let new_addr = sim.redis[new].addr.clone();
    sim.replicaof_by_hand(new, Role::Master);
    sim.replicaof_by_hand(old, Role::Replica(new_addr.clone()));
    run_until_converged(&mut sim, secs(60));
    let (addr, epoch) = agreed_master(&sim, "session").unwrap();
    assert_eq!(addr, new_addr.to_string());
    assert!(epoch > 0);
}

#[test]
fn a_replication_cycle_is_broken_by_a_failover() {
    // Regression (seed 2508): the master every node names and a replica follow each other, so
    // no instance is a master and every replication link is down. Replica selection measured the
    // master's down time from its SDOWN, which comes down_after plus two INFO periods after it
    // reported the replica role; every link had been down longer, and no replica was eligible.
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    let (a, b) = (member(&sim, 0, 0), member(&sim, 0, 1));
    let (a_addr, b_addr) = (sim.redis[a].addr.clone(), sim.redis[b].addr.clone());
    sim.replicaof_by_hand(b, Role::Replica(a_addr.clone()));
    sim.replicaof_by_hand(a, Role::Replica(b_addr));
    run_until_converged(&mut sim, secs(60));
    let (addr, epoch) = agreed_master(&sim, "session").unwrap();
    assert_ne!(addr, a_addr.to_string());
    assert!(epoch > 0);
}

/// A quiet cluster of `nodes` nodes whose `session` group has a single replica, as in the
/// fifty-masters report.
fn one_replica(seed: u64, nodes: usize) -> Simulation {
    let mut options = Options::quiet(seed, nodes);
    options.groups[0].replicas = 1;
    options.groups[0].priorities = vec![100];
    options.groups[0].quorum = options.groups[0].quorum.min(u32::try_from(nodes).unwrap());
    Simulation::new(options, Trace::Off)
}

#[test]
fn a_leader_whose_promotion_went_out_is_not_superseded_by_a_newer_epoch() {
    // The liveness failure of the fifty-masters report, by hand: the leader sent its promotion,
    // then another node asked for a newer epoch. The leader used to vote for it and drop its
    // failover, leaving a promoted replica that no node named and no replica to promote.
    let mut sim = one_replica(5, 3);
    sim.run_for(secs(3)).unwrap();
    let (master, replica) = (member(&sim, 0, 0), member(&sim, 0, 1));
    sim.kill_redis(master);
    let sent = sim.run_until_true(secs(10), |s| s.checker.promotions_sent > 0).unwrap();
    assert!(sent);
    // The promotion waits in the replica (stopped) while another node starts a newer epoch.
    sim.pause_redis(replica);
    let leader = sim.checker.last_promoter.unwrap();
    sim.admin_failover((leader + 1) % 3, "session");
    sim.run_for(secs(1)).unwrap();
    sim.resume_redis(replica);
    sim.run_for(secs(5)).unwrap();
    sim.restart_redis(master, true, true);
    run_until_converged(&mut sim, secs(30));
    // One failover (its promotion, sent again while the replica was stopped, counts once).
    assert_eq!(sim.checker.failovers_promoted("session"), 1, "{}", sim.describe());
    let (addr, epoch) = agreed_master(&sim, "session").unwrap();
    assert_eq!((addr, epoch), (sim.redis[replica].addr.to_string(), 1));
}

#[test]
fn a_promotion_abandoned_by_a_crashed_leader_is_completed_by_the_next_leader() {
    // The leader crashes right after its promotion went out, before it could name the new
    // master: the replica reports role:master with the old master's history, and is the only
    // instance left. The next leader (another node, or this one after its restart) completes
    // the failover with it.
    for nodes in [1, 3] {
        let mut sim = one_replica(6, nodes);
        sim.run_for(secs(3)).unwrap();
        let (master, replica) = (member(&sim, 0, 0), member(&sim, 0, 1));
        sim.crash_next_promoter(secs(2));
        sim.kill_redis(master);
        sim.run_for(secs(15)).unwrap();
        let (addr, epoch) = agreed_master(&sim, "session")
            .unwrap_or_else(|| panic!("{nodes} nodes disagree:\n{}", sim.describe()));
        assert_eq!(addr, sim.redis[replica].addr.to_string(), "{}", sim.describe());
        assert!(epoch > 0);
        sim.restart_redis(master, true, true);
        run_until_converged(&mut sim, secs(30));
    }
}

#[test]
fn fifty_masters_killed_at_once_all_fail_over_on_stalling_nodes() {
    let mut options = Options::quiet(7, 3);
    options.groups[0].replicas = 1;
    options.groups[0].priorities = vec![100];
    let template = options.groups[0].clone();
    options.groups = (0..50)
        .map(|i| GroupOptions { name: simulations::options::group_name(i), ..template.clone() })
        .collect();
    let bound = options.failover_bound();
    let mut sim = Simulation::new(options, Trace::Off);
    sim.run_for(secs(3)).unwrap();
    let masters: Vec<usize> = (0..50).map(|g| member(&sim, g, 0)).collect();
    for &m in &masters {
        sim.kill_redis(m);
    }
    // A loaded machine: each node stalls for a moment while the failovers run.
    for (i, ms) in [(0, 150), (1, 300), (2, 80)] {
        sim.run_for(Duration::from_millis(900)).unwrap();
        sim.stall_node(i, Duration::from_millis(ms));
    }
    let done = sim
        .run_until_true(bound, |s| (0..50).all(|g| s.new_master_agreed(g, &masters).is_ok()))
        .unwrap();
    assert!(done, "not every master failed over within {bound:?}:\n{}", sim.describe());
    // One promotion per group: no leader was superseded, no replica promoted twice.
    expect_promotions(&mut sim, 50);
}

#[test]
fn two_survivors_fail_over_without_repeating_a_split_vote() {
    // One node of three is dead; the other two see the master die at the same instant. With a
    // 100 ms down_after their election jitters span 10 ms, so they often start together and
    // split the vote. The failover must still take one retry at most, never a timeout.
    let mut splits = 0;
    for seed in 0..40 {
        let mut options = Options::quiet(seed, 3);
        options.groups[0].down_after = Duration::from_millis(100);
        let mut sim = Simulation::new(options, Trace::Off);
        sim.run_for(secs(2)).unwrap();
        sim.crash_node(2, true);
        sim.run_for(secs(2)).unwrap();
        let master = member(&sim, 0, 0);
        sim.kill_redis(master);
        let killed = sim.now;
        let new = sim.redis[member(&sim, 0, 1)].addr.clone();
        let replaced = |s: &Simulation| {
            (0..2).all(|i| s.belief(i, "session").is_some_and(|(a, e)| a == new || e > 0))
                && (0..2).all(|i| s.belief(i, "session") == s.belief(0, "session"))
                && s.belief(0, "session").is_some_and(|(_, e)| e > 0)
        };
        let done = sim.run_until_true(secs(5), replaced).unwrap();
        let took = Duration::from_micros(sim.now - killed);
        assert!(
            done && took < Duration::from_millis(600),
            "seed {seed}: {took:?}\n{}",
            sim.describe()
        );
        splits += sim.checker.attempts_by(0) + sim.checker.attempts_by(1) - 1;
    }
    assert!(splits > 0, "no seed split the vote: the test exercises nothing");
}

#[test]
fn a_new_master_stays_writable_when_its_deposed_master_comes_back() {
    // Regression (tests/fencing.rs, real partitions): the master is cut off from everything and
    // replaced; when the partition heals it is back, still a master, and counted for the new
    // master's lease (two of two) although it acknowledges nothing until it resynchronises: the
    // new master refused every write meanwhile. It must stay writable throughout.
    let mut sim = cluster(3);
    sim.run_for(secs(3)).unwrap();
    let old = member(&sim, 0, 0);
    let everyone: Vec<Endpoint> = (0..3)
        .map(Endpoint::Node)
        .chain([member(&sim, 0, 1), member(&sim, 0, 2)].map(Endpoint::Redis))
        .collect();
    let cut = sim.partition(
        "the master cut off".into(),
        Network::paths_between(&[Endpoint::Redis(old)], &everyone, true),
        Cut::Drop,
    );
    sim.run_for(secs(8)).unwrap();
    expect_promotions(&mut sim, 1);
    let promoted = agreed_master_of_majority(&sim);
    let new = (0..sim.redis.len()).find(|&r| sim.redis[r].addr.to_string() == promoted).unwrap();
    // Replicas' acknowledgements are brought up to date before each look.
    sim.refresh_group(0);
    assert!(sim.redis[new].writable(sim.now), "{}", sim.describe());
    sim.heal_partition(cut);
    for _ in 0..200 {
        sim.run_for(Duration::from_millis(50)).unwrap();
        sim.refresh_group(0);
        assert!(
            sim.redis[new].writable(sim.now),
            "the new master refuses writes after the heal:\n{}",
            sim.describe()
        );
    }
    run_until_converged(&mut sim, secs(40));
}

/// A quiet three-node cluster whose group has `down_after` 5 s and the crash rule's default
/// threshold (300 ms), run for 3 s.
fn slow_down_after_cluster() -> Simulation {
    let mut options = Options::quiet(1, 3);
    options.groups[0].down_after = secs(5);
    let mut sim = Simulation::new(options, Trace::Off);
    sim.run_for(secs(3)).unwrap();
    sim
}

/// Every node names a master other than `old` for `session`, with a config epoch past 0.
fn replaced(sim: &Simulation, old: &str) -> bool {
    (0..sim.nodes.len())
        .all(|i| sim.belief(i, "session").is_some_and(|(a, e)| a.to_string() != old && e > 0))
}

#[test]
fn a_killed_master_is_replaced_by_the_crash_rule_long_before_down_after() {
    let mut sim = slow_down_after_cluster();
    let master = member(&sim, 0, 0);
    let old = sim.redis[master].addr.to_string();
    sim.kill_redis(master);
    let killed = sim.now;
    // Refused for 300 ms, one reconnect period, agreement, election, promotion: under a second,
    // where the silence rule alone would take five.
    let done = sim.run_until_true(secs(1), |s| replaced(s, &old)).unwrap();
    let took = Duration::from_micros(sim.now - killed);
    assert!(done, "not replaced within 1 s of the kill:\n{}", sim.describe());
    assert!(took >= Duration::from_millis(300), "replaced {took:?} after the kill");
    expect_promotions(&mut sim, 1);
    sim.restart_redis(master, true, false);
    run_until_converged(&mut sim, secs(30));
    assert_eq!(sim.checker.promotions_sent, 1);
}

#[test]
fn a_silent_master_keeps_the_down_after_rule() {
    // Stopped (SIGSTOP), then cut off by a partition that drops packets: neither refuses a
    // connection, so neither is down before five seconds of silence.
    for dropped in [false, true] {
        let mut sim = slow_down_after_cluster();
        let master = member(&sim, 0, 0);
        let old = sim.redis[master].addr.to_string();
        if dropped {
            let others: Vec<Endpoint> = (0..3).map(Endpoint::Node).collect();
            sim.partition(
                "the master cut off".into(),
                Network::paths_between(&[Endpoint::Redis(master)], &others, true),
                Cut::Drop,
            );
        } else {
            sim.pause_redis(master);
        }
        let silenced = sim.now;
        let early = sim.run_until_true(Duration::from_millis(4400), |s| replaced(s, &old)).unwrap();
        assert!(!early, "replaced before down_after (dropped: {dropped}):\n{}", sim.describe());
        assert_eq!(sim.checker.promotions_sent, 0);
        let done = sim.run_until_true(secs(3), |s| replaced(s, &old)).unwrap();
        let took = Duration::from_micros(sim.now - silenced);
        assert!(done, "not replaced after down_after (dropped: {dropped}):\n{}", sim.describe());
        assert!(took > Duration::from_millis(4400), "{took:?}");
    }
}

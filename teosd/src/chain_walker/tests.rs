//! Unit tests of the chain walker against a scripted bitcoind (`bitcoind::fake`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::*;
use crate::bitcoind::fake::FakeBitcoind;
use crate::shutdown::Shutdown;

struct World {
    bitcoind: Arc<FakeBitcoind>,
    store: Store,
    _dir: tempfile::TempDir,
}

impl World {
    fn new(blocks: u32) -> World {
        let dir = tempfile::tempdir().unwrap();
        World {
            bitcoind: Arc::new(FakeBitcoind::new(blocks)),
            store: Store::open(&dir.path().join("teos.db")).unwrap(),
            _dir: dir,
        }
    }

    /// A walker whose tip is bitcoind's block `hash` (its chainwork unknown, as after an upgrade).
    fn walker_at(&self, hash: BlockHash) -> ChainWalker<FakeBitcoind> {
        let height = self.bitcoind.block_header(&hash).unwrap().height;
        let carrier = Carrier::new(
            self.bitcoind.clone(),
            Arc::new(AtomicBool::new(true)),
            Arc::new(Shutdown::new()),
        );
        ChainWalker::new(carrier, self.store.clone(), Tip::new(height, hash))
    }

    /// Remembers bitcoind's active blocks `from..=to` as the tower's `chain` rows.
    fn remember(&self, from: u32, to: u32) {
        let blocks: Vec<(u32, BlockHash)> = (from..=to).map(|h| (h, self.bitcoind.at(h))).collect();
        self.store
            .write_blocking(move |conn| -> Result<(), crate::storage::StorageError> {
                for (height, hash) in &blocks {
                    conn.push_block(*height, hash, None, 288)?;
                }
                Ok(())
            })
            .unwrap();
    }
}

fn stale_heights(reorg: &Reorg) -> Vec<u32> {
    reorg.stale.iter().map(|(h, _)| *h).collect()
}

#[test]
fn a_tip_equal_to_bitcoinds_best_block_is_at_tip_and_a_lower_one_is_behind() {
    let world = World::new(10);
    let mut walker = world.walker_at(world.bitcoind.tip());
    assert_eq!(walker.poll().unwrap(), Step::AtTip);
    let mut walker = world.walker_at(world.bitcoind.at(7));
    assert_eq!(walker.poll().unwrap(), Step::Behind { best_height: 10 });
}

#[test]
fn a_reorg_of_the_only_block_the_tower_knows_finds_the_fork_through_headers() {
    // Fresh bootstrap at block 10 (no other block remembered), then a 1-block reorg of it.
    let world = World::new(10);
    let bootstrap = world.bitcoind.tip();
    world.remember(10, 10);
    world.bitcoind.branch(world.bitcoind.at(9), 2);
    let mut walker = world.walker_at(bootstrap);
    let Step::Reorg(reorg) = walker.poll().unwrap() else {
        panic!("expected a reorg");
    };
    assert_eq!(reorg.fork.height, 9);
    assert_eq!(reorg.fork.hash, world.bitcoind.at(9));
    assert_eq!(
        reorg.fork.chainwork,
        Some(world.bitcoind.work(&world.bitcoind.at(9)))
    );
    assert_eq!(reorg.stale, vec![(10, Some(bootstrap))]);
}

#[test]
fn a_reorg_deeper_than_the_remembered_blocks_is_followed_to_its_fork_point() {
    let world = World::new(400);
    let tip = world.bitcoind.tip();
    world.remember(400 - 287, 400);
    // 350 blocks replaced by a longer branch from block 50.
    world.bitcoind.branch(world.bitcoind.at(50), 352);
    let mut walker = world.walker_at(tip);
    let Step::Reorg(reorg) = walker.poll().unwrap() else {
        panic!("expected a reorg");
    };
    assert_eq!(reorg.fork.height, 50);
    assert_eq!(stale_heights(&reorg), (51..=400).rev().collect::<Vec<_>>());
    assert!(reorg.stale.iter().all(|(_, hash)| hash.is_some()));
}

#[test]
fn a_best_block_with_less_work_is_waited_for_not_followed() {
    // bitcoind restarted with -reindex: its chain is back at 60 and it does not know the tower's tip.
    let world = World::new(100);
    let tip = world.bitcoind.tip();
    world.remember(90, 100);
    let stored_work = world.bitcoind.work(&tip);
    world
        .store
        .write_blocking(move |conn| -> Result<(), crate::storage::StorageError> {
            conn.push_block(100, &tip, Some(stored_work), 288)
        })
        .unwrap();
    world.bitcoind.hide_above(60);
    let mut walker = world.walker_at_unknown(100, tip);
    match walker.poll().unwrap() {
        Step::Waiting { best } => assert_eq!(best.height, 60),
        other => panic!("expected to wait, got {other:?}"),
    }
    // Once bitcoind is back past the tip, the tower carries on.
    world.bitcoind.reveal();
    world.bitcoind.mine(2);
    assert_eq!(walker.poll().unwrap(), Step::Behind { best_height: 102 });
}

#[test]
fn a_competing_branch_with_equal_work_is_not_followed() {
    // The tower followed a branch bitcoind saw second: same work, bitcoind keeps its first-seen one.
    let world = World::new(20);
    let other = world.bitcoind.branch(world.bitcoind.at(18), 2);
    let mut walker = world.walker_at(other[1]);
    assert!(matches!(walker.poll().unwrap(), Step::Waiting { .. }));
    // One more block on bitcoind's branch: more work, followed.
    world.bitcoind.mine(1);
    let Step::Reorg(reorg) = walker.poll().unwrap() else {
        panic!("expected a reorg");
    };
    assert_eq!(reorg.fork.height, 18);
    assert_eq!(stale_heights(&reorg), vec![20, 19]);
}

#[test]
fn an_invalidated_tip_is_followed_down_even_with_less_work() {
    let world = World::new(30);
    let tip = world.bitcoind.tip();
    world.bitcoind.invalidate(world.bitcoind.at(28));
    let mut walker = world.walker_at(tip);
    let Step::Reorg(reorg) = walker.poll().unwrap() else {
        panic!("expected a reorg");
    };
    assert_eq!(reorg.fork.height, 27);
    assert_eq!(stale_heights(&reorg), vec![30, 29, 28]);
}

#[test]
fn a_node_that_never_saw_the_towers_blocks_is_compared_height_by_height() {
    let world = World::new(50);
    let tip = world.bitcoind.tip();
    world.remember(40, 50);
    // A longer branch from 45, and bitcoind forgets the tower's blocks 46..=50 entirely.
    let old: Vec<BlockHash> = (46..=50).map(|h| world.bitcoind.at(h)).collect();
    world.bitcoind.branch(world.bitcoind.at(45), 10);
    world.bitcoind.forget(&old);
    let mut walker = world.walker_at_unknown(50, tip);
    let Step::Reorg(reorg) = walker.poll().unwrap() else {
        panic!("expected a reorg");
    };
    assert_eq!(reorg.fork.height, 45);
    assert_eq!(stale_heights(&reorg), vec![50, 49, 48, 47, 46]);
}

impl World {
    /// A walker at a tip bitcoind may not know.
    fn walker_at_unknown(&self, height: u32, hash: BlockHash) -> ChainWalker<FakeBitcoind> {
        let carrier = Carrier::new(
            self.bitcoind.clone(),
            Arc::new(AtomicBool::new(true)),
            Arc::new(Shutdown::new()),
        );
        ChainWalker::new(carrier, self.store.clone(), Tip::new(height, hash))
    }
}

#[test]
fn a_tip_without_stored_work_is_waited_for_when_bitcoind_is_shorter_and_does_not_know_it() {
    // A tip written before schema V4 (no chainwork) and a node reindexing from scratch.
    let world = World::new(100);
    let tip = world.bitcoind.tip();
    world.remember(90, 100);
    world.bitcoind.hide_above(60);
    let mut walker = world.walker_at_unknown(100, tip);
    assert!(matches!(walker.poll().unwrap(), Step::Waiting { .. }));
    world.bitcoind.reveal();
    assert_eq!(walker.poll().unwrap(), Step::AtTip);
}

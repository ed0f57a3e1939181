//! Work with dependencies on one pool of threads: the executor of a run's
//! graph of stages.
//!
//! At most one piece of work per thread runs at a time. Each runs on a thread
//! of the global pool and cuts its batches into shards there, so a thread with
//! no piece of its own takes shards of the others' batches: while one stage is
//! ready every core works on it, and while many are, each core runs one. The
//! pool is never handed more pieces than it has threads, so a thread waiting
//! for a shard nearly always helps with other shards. Nearly: a piece handed
//! over in the moment a waiting thread looks for work may start on that
//! thread, below the waiting stage on its stack. So a stage never holds a
//! lock across parallel work that another stage may take (that would wait on
//! itself: see `TaskRun::base_reference`).
//!
//! Which piece runs first changes how soon a result comes, never what it is:
//! each stage draws from its own random stream and cuts its batches by their
//! size alone (`runtime::shards`).

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use crate::error::{Error, Result};

/// Run `work(i)` for every node `i` of a graph whose node `i` needs the nodes
/// `needs[i]` (indices into `needs`) to have finished first. Ready nodes start
/// lowest index first, at most `slots` at a time. Returns when every node has
/// run, or, after the first failure, when the nodes already started have
/// finished (nothing new starts): the first error. A panic in `work` is an
/// error. Called from a thread of a rayon pool, it runs one node at a time
/// on that thread.
pub fn execute<F>(needs: &[Vec<usize>], slots: usize, work: F) -> Result<()>
where
    F: Fn(usize) -> Result<()> + Sync,
{
    let n = needs.len();
    let mut waiting: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut dependents = vec![vec![]; n];
    for (i, need) in needs.iter().enumerate() {
        for &j in need {
            assert!(j < n && j != i, "node {i} needs node {j}, not another node");
            dependents[j].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<()>)>();
    let (mut running, mut finished) = (0, 0);
    let mut failed: Option<Error> = None;
    let work = &work;
    let run = move |i: usize| {
        catch_unwind(AssertUnwindSafe(|| work(i)))
            .unwrap_or_else(|panic| Err(Error::Internal(panic_message(&panic))))
    };
    // Called from a thread of a pool, this loop would hold that thread while
    // it waits: run one node at a time on it instead (a pool of one would
    // otherwise never run anything).
    let inline = rayon::current_thread_index().is_some();
    rayon::in_place_scope(|scope| {
        loop {
            while running < slots.max(1) && failed.is_none() {
                let Some(i) = ready.pop_first() else { break };
                running += 1;
                let done = done_tx.clone();
                if inline {
                    let _ = done.send((i, run(i)));
                    break;
                }
                // The receiver outlives the scope.
                scope.spawn(move |_| {
                    let _ = done.send((i, run(i)));
                });
            }
            if running == 0 {
                break;
            }
            let (i, result) = done_rx.recv().expect("a started node reports");
            running -= 1;
            finished += 1;
            match result {
                Ok(()) => {
                    for &d in &dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 {
                            ready.insert(d);
                        }
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
    });
    match failed {
        Some(e) => Err(e),
        None if finished < n => Err(Error::Internal(format!(
            "{} of {n} stages wait on each other (a cycle in the stage graph)",
            n - finished
        ))),
        None => Ok(()),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    format!("a stage panicked: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[test]
    fn every_node_runs_after_what_it_needs_and_no_more_than_slots_at_once() {
        // 0 -> {1, 2, 3} -> 4, and 5 alone.
        let needs = vec![vec![], vec![0], vec![0], vec![0], vec![1, 2, 3], vec![]];
        let order = Mutex::new(vec![]);
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        // From outside any pool: the nodes run on the global pool's threads.
        execute(&needs, 2, |i| {
            let at = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(at, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            order.lock().unwrap().push(i);
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        let order = order.into_inner().unwrap();
        let at = |i| order.iter().position(|&x| x == i).unwrap();
        assert_eq!(order.len(), 6);
        for i in 1..4 {
            assert!(at(0) < at(i) && at(i) < at(4), "{order:?}");
        }
        assert!(most.into_inner() <= 2, "at most two at once");
    }

    #[test]
    fn from_inside_a_pool_of_one_every_node_still_runs() {
        let needs = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let ran = Mutex::new(vec![]);
        crate::runtime::pool(1)
            .unwrap()
            .install(|| {
                execute(&needs, 1, |i| {
                    ran.lock().unwrap().push(i);
                    Ok(())
                })
            })
            .unwrap();
        assert_eq!(ran.into_inner().unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn after_a_failure_nothing_new_starts_and_the_first_error_comes_back() {
        let needs = vec![vec![], vec![0], vec![1]];
        let ran = Mutex::new(vec![]);
        let err = execute(&needs, 1, |i| {
            ran.lock().unwrap().push(i);
            if i == 1 {
                panic!("stage one broke");
            }
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("stage one broke"), "{err}");
        assert_eq!(
            ran.into_inner().unwrap(),
            vec![0, 1],
            "node 2 never started"
        );
        let cycle = execute(&[vec![1], vec![0]], 2, |_| Ok(())).unwrap_err();
        assert!(cycle.to_string().contains("cycle"), "{cycle}");
    }
}

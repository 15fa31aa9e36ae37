//! One conformance suite for every repository, run on PostgreSQL and SQLite alike.

mod analyses;
mod connections;

use analyses::*;
use connections::*;

use crate::MIGRATIONS;

shadowsync_common::conformance!("task", MIGRATIONS;
    request_ids_reserve_replay_and_refuse_other_parameters,
    connections_round_trip_and_names_are_unique,
    connections_list_filters_sorts_and_pages,
    unfinished_tasks_are_counted_and_block_the_delete,
    a_task_inserted_during_a_delete_cannot_slip_through,
    analysis_runs_under_a_lease_and_completes,
    rows_list_by_tab_and_name,
    replan_moves_rows_and_changes_the_preview,
    replan_skips_and_restores_rows_with_their_parent,
    lost_runners_fail_and_failed_analyses_retry,
    unsubmitted_analyses_expire,
);

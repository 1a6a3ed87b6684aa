//! The one catalogue of metric names.
//!
//! Every metric lookout exports is declared here once, with its type, its label names and
//! its help text. Collectors build samples from these definitions, the exposition writes
//! `# HELP`/`# TYPE` from them, and rule validation and the dashboard test check names
//! against [`ALL`], so code, rules and dashboards cannot drift apart.

/// Prometheus metric type of a catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that can go up and down.
    Gauge,
    /// A monotonically increasing value (reset only by a restart of its source).
    Counter,
    /// A histogram: `_bucket`, `_sum` and `_count` series.
    Histogram,
}

impl Kind {
    /// The name used on a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// One exported metric: its name, type, label names (besides `host`) and help text.
#[derive(Debug, PartialEq, Eq)]
pub struct Metric {
    /// Full Prometheus name, e.g. `lookout_cpu_usage_ratio`.
    pub name: &'static str,
    /// Prometheus type.
    pub kind: Kind,
    /// Label names, in the order samples carry them. `host` is added to every sample on export.
    pub labels: &'static [&'static str],
    /// Help text for the `# HELP` line.
    pub help: &'static str,
}

macro_rules! catalogue {
    ($($id:ident = $name:literal, $kind:ident, [$($label:literal),*], $help:literal;)*) => {
        $(
            #[doc = $help]
            pub static $id: Metric = Metric {
                name: $name,
                kind: Kind::$kind,
                labels: &[$($label),*],
                help: $help,
            };
        )*
        /// Every metric of the catalogue.
        pub static ALL: &[&Metric] = &[$(&$id),*];
    };
}

catalogue! {
    // Host: CPU and load.
    CPU_USAGE_RATIO = "lookout_cpu_usage_ratio", Gauge, [],
        "Fraction of CPU time spent busy over the last interval (all modes but idle and iowait; counts irq, softirq and steal), 0..1.";
    CPU_SECONDS_TOTAL = "lookout_cpu_seconds_total", Counter, ["mode"],
        "CPU time spent in each mode, summed over all CPUs, since boot.";
    CPUS = "lookout_cpus", Gauge, [],
        "Number of online CPUs.";
    LOAD1 = "lookout_load1", Gauge, [], "1-minute load average.";
    LOAD5 = "lookout_load5", Gauge, [], "5-minute load average.";
    LOAD15 = "lookout_load15", Gauge, [], "15-minute load average.";
    // Host: memory.
    MEMORY_TOTAL_BYTES = "lookout_memory_total_bytes", Gauge, [], "Total usable memory.";
    MEMORY_AVAILABLE_BYTES = "lookout_memory_available_bytes", Gauge, [],
        "Memory available for starting new applications without swapping (MemAvailable).";
    MEMORY_USAGE_RATIO = "lookout_memory_usage_ratio", Gauge, [],
        "1 - available/total memory, 0..1.";
    SWAP_USAGE_RATIO = "lookout_swap_usage_ratio", Gauge, [],
        "Fraction of swap in use, 0..1 (0 when the host has no swap).";
    // Host: filesystems.
    FILESYSTEM_SIZE_BYTES = "lookout_filesystem_size_bytes", Gauge, ["mountpoint", "device", "fstype"],
        "Filesystem size.";
    FILESYSTEM_AVAIL_BYTES = "lookout_filesystem_avail_bytes", Gauge, ["mountpoint", "device", "fstype"],
        "Filesystem space available to unprivileged users.";
    FILESYSTEM_USAGE_RATIO = "lookout_filesystem_usage_ratio", Gauge, ["mountpoint", "device", "fstype"],
        "Used / (used + available to unprivileged users), the figure df prints, 0..1.";
    FILESYSTEM_INODES_USAGE_RATIO = "lookout_filesystem_inodes_usage_ratio", Gauge, ["mountpoint", "device", "fstype"],
        "Fraction of inodes in use, 0..1.";
    // Host: disks.
    DISK_READ_BYTES_TOTAL = "lookout_disk_read_bytes_total", Counter, ["device"],
        "Bytes read from the block device since boot.";
    DISK_WRITTEN_BYTES_TOTAL = "lookout_disk_written_bytes_total", Counter, ["device"],
        "Bytes written to the block device since boot.";
    DISK_IO_TIME_RATIO = "lookout_disk_io_time_ratio", Gauge, ["device"],
        "Fraction of the last interval the device was busy with I/O, 0..1.";
    // Host: network.
    NETWORK_RECEIVE_BYTES_TOTAL = "lookout_network_receive_bytes_total", Counter, ["device"],
        "Bytes received on the interface since boot.";
    NETWORK_TRANSMIT_BYTES_TOTAL = "lookout_network_transmit_bytes_total", Counter, ["device"],
        "Bytes transmitted on the interface since boot.";
    NETWORK_RECEIVE_ERRORS_TOTAL = "lookout_network_receive_errors_total", Counter, ["device"],
        "Receive errors on the interface since boot.";
    NETWORK_TRANSMIT_ERRORS_TOTAL = "lookout_network_transmit_errors_total", Counter, ["device"],
        "Transmit errors on the interface since boot.";
    NETWORK_RECEIVE_DROPS_TOTAL = "lookout_network_receive_drops_total", Counter, ["device"],
        "Received packets dropped on the interface since boot.";
    NETWORK_TRANSMIT_DROPS_TOTAL = "lookout_network_transmit_drops_total", Counter, ["device"],
        "Transmitted packets dropped on the interface since boot.";
    NETWORK_RECEIVE_BYTES_PER_SECOND = "lookout_network_receive_bytes_per_second", Gauge, ["device"],
        "Bytes received per second over the last interval.";
    NETWORK_TRANSMIT_BYTES_PER_SECOND = "lookout_network_transmit_bytes_per_second", Gauge, ["device"],
        "Bytes transmitted per second over the last interval.";
    // Host: TCP.
    TCP_CONNECTIONS = "lookout_tcp_connections", Gauge, ["state"],
        "TCP sockets (IPv4 and IPv6) by kernel state, host-wide.";
    TCP_PORT_CONNECTIONS = "lookout_tcp_port_connections", Gauge, ["port", "state"],
        "TCP connections whose local port is a configured port (the server side), by state.";
    // Host: system.
    UPTIME_SECONDS = "lookout_uptime_seconds", Gauge, [], "Seconds since the host booted.";
    PROCESSES = "lookout_processes", Gauge, [], "Number of processes on the host.";
    // cgroups
    CGROUP_CPU_SECONDS_TOTAL = "lookout_cgroup_cpu_seconds_total", Counter, ["cgroup", "unit", "container_id"],
        "CPU time used by the cgroup's tasks (v1 cpuacct.usage, v2 cpu.stat usage_usec).";
    CGROUP_CPU_USAGE_RATIO = "lookout_cgroup_cpu_usage_ratio", Gauge, ["cgroup", "unit", "container_id"],
        "Share of the whole host's CPU the cgroup used over the last interval: CPU seconds / (seconds x online CPUs), 0..1.";
    CGROUP_MEMORY_BYTES = "lookout_cgroup_memory_bytes", Gauge, ["cgroup", "unit", "container_id"],
        "Working set of the cgroup: memory usage minus inactive file cache (as the kubelet and cAdvisor count it).";
    CGROUP_MEMORY_LIMIT_BYTES = "lookout_cgroup_memory_limit_bytes", Gauge, ["cgroup", "unit", "container_id"],
        "Memory limit of the cgroup (v1 memory.limit_in_bytes, v2 memory.max); absent when unlimited.";
    CGROUP_MEMORY_USAGE_RATIO = "lookout_cgroup_memory_usage_ratio", Gauge, ["cgroup", "unit", "container_id"],
        "Working set / memory limit; absent when unlimited.";
    CGROUP_OOM_KILLS_TOTAL = "lookout_cgroup_oom_kills_total", Counter, ["cgroup", "unit", "container_id"],
        "Processes of the cgroup killed by the OOM killer (oom_kill of v1 memory.oom_control, v2 memory.events).";
    CGROUP_PIDS = "lookout_cgroup_pids", Gauge, ["cgroup", "unit", "container_id"],
        "Tasks in the cgroup (pids.current), or without the pids controller its processes (cgroup.procs).";
    CGROUPS_DROPPED = "lookout_cgroups_dropped", Gauge, [],
        "Matching cgroups left out because collect.cgroups.max_cgroups was reached.";
    // Processes: named groups (collect.processes).
    PROCESS_GROUP_MEMBERS = "lookout_process_group_members", Gauge, ["group"],
        "Processes that are members of the group (match all its keys).";
    PROCESS_GROUP_UP = "lookout_process_group_up", Gauge, ["group"],
        "1 when the group has at least min_count members, else 0.";
    PROCESS_GROUP_RESIDENT_MEMORY_BYTES = "lookout_process_group_resident_memory_bytes", Gauge, ["group"],
        "Resident memory (RSS) of the group's members together.";
    PROCESS_GROUP_MEMORY_USAGE_RATIO = "lookout_process_group_memory_usage_ratio", Gauge, ["group"],
        "Members' resident memory / the group's max_memory; absent without max_memory or members.";
    PROCESS_GROUP_CPU_SECONDS_TOTAL = "lookout_process_group_cpu_seconds_total", Counter, ["group"],
        "User and system CPU time of the group's members, accumulated while they are members (never decreases when one exits).";
    PROCESS_GROUP_CPU_USAGE_RATIO = "lookout_process_group_cpu_usage_ratio", Gauge, ["group"],
        "CPU time of the members over the last interval / (interval x online CPUs): their share of the whole host's CPU, 0..1.";
    PROCESS_GROUP_THREADS = "lookout_process_group_threads", Gauge, ["group"],
        "Threads of the group's members.";
    PROCESS_GROUP_OPEN_FDS = "lookout_process_group_open_fds", Gauge, ["group"],
        "Open file descriptors of the group's members.";
    PROCESS_GROUP_FD_USAGE_RATIO = "lookout_process_group_fd_usage_ratio", Gauge, ["group"],
        "Highest open file descriptors / soft open files limit of one member, 0..1.";
    PROCESS_GROUP_RESTARTS_TOTAL = "lookout_process_group_restarts_total", Counter, ["group"],
        "Members that went away and were replaced by a new matching process.";
    PROCESS_GROUP_OLDEST_START_TIME_SECONDS = "lookout_process_group_oldest_start_time_seconds", Gauge, ["group"],
        "Unix time the group's oldest member started.";
    // Cache.
    REDIS_UP = "lookout_redis_up", Gauge, ["target", "role"], "1 if the last Redis/Valkey check succeeded, else 0.";
    REDIS_PING_SECONDS = "lookout_redis_ping_seconds", Gauge, ["target", "role"], "Round trip of the last PING.";
    REDIS_KEYSPACE_HITS_TOTAL = "lookout_redis_keyspace_hits_total", Counter, ["target", "role"], "Successful key lookups (INFO keyspace_hits).";
    REDIS_KEYSPACE_MISSES_TOTAL = "lookout_redis_keyspace_misses_total", Counter, ["target", "role"], "Failed key lookups (INFO keyspace_misses).";
    REDIS_HIT_RATIO = "lookout_redis_hit_ratio", Gauge, ["target", "role"],
        "hits/(hits+misses) over the last interval from counter deltas; absent when too few lookups.";
    REDIS_MEMORY_USED_BYTES = "lookout_redis_memory_used_bytes", Gauge, ["target", "role"], "Memory used by Redis (INFO used_memory).";
    REDIS_MEMORY_MAX_BYTES = "lookout_redis_memory_max_bytes", Gauge, ["target", "role"], "Configured maxmemory (0 when unlimited).";
    REDIS_MEMORY_USAGE_RATIO = "lookout_redis_memory_usage_ratio", Gauge, ["target", "role"], "used_memory / maxmemory; absent when maxmemory is 0.";
    REDIS_CONNECTED_CLIENTS = "lookout_redis_connected_clients", Gauge, ["target", "role"], "Connected clients.";
    REDIS_EVICTED_KEYS_TOTAL = "lookout_redis_evicted_keys_total", Counter, ["target", "role"], "Keys evicted because of maxmemory.";
    REDIS_COMMANDS_PROCESSED_TOTAL = "lookout_redis_commands_processed_total", Counter, ["target", "role"], "Commands processed by the server.";
    REDIS_QUEUE_LENGTH = "lookout_redis_queue_length", Gauge, ["target", "role", "queue"], "LLEN of a configured list.";
    // PostgreSQL.
    POSTGRES_UP = "lookout_postgres_up", Gauge, ["target"], "1 if the last PostgreSQL check succeeded, else 0.";
    POSTGRES_PING_SECONDS = "lookout_postgres_ping_seconds", Gauge, ["target"], "Round trip of the last SELECT 1.";
    POSTGRES_CONNECTIONS = "lookout_postgres_connections", Gauge, ["target", "state"], "Client connections by state (pg_stat_activity), the agent's own included.";
    POSTGRES_MAX_CONNECTIONS = "lookout_postgres_max_connections", Gauge, ["target"], "The server's max_connections.";
    POSTGRES_CONNECTIONS_USAGE_RATIO = "lookout_postgres_connections_usage_ratio", Gauge, ["target"], "Client connections / max_connections.";
    POSTGRES_CACHE_HIT_RATIO = "lookout_postgres_cache_hit_ratio", Gauge, ["target"], "Blocks found in shared buffers / blocks needed, over the last interval from counter deltas; absent below min_blocks or across a stats reset.";
    POSTGRES_TRANSACTIONS_TOTAL = "lookout_postgres_transactions_total", Counter, ["target", "result"], "Transactions committed or rolled back, all databases (pg_stat_database).";
    POSTGRES_DEADLOCKS_TOTAL = "lookout_postgres_deadlocks_total", Counter, ["target"], "Deadlocks detected, all databases (pg_stat_database).";
    POSTGRES_SLOW_QUERIES = "lookout_postgres_slow_queries", Gauge, ["target"], "Queries active for longer than the target's slow_query.";
    POSTGRES_LONGEST_QUERY_SECONDS = "lookout_postgres_longest_query_seconds", Gauge, ["target"], "How long the longest active query has run (0 when none).";
    POSTGRES_QUERY_AVG_SECONDS = "lookout_postgres_query_avg_seconds", Gauge, ["target"], "Average execution time of the statements run over the last interval (pg_stat_statements, the agent's own left out); absent without the extension or when idle.";
    POSTGRES_STATEMENTS_AVAILABLE = "lookout_postgres_statements_available", Gauge, ["target"], "1 when pg_stat_statements can be read in the target's database, else 0 (and no average query time).";
    POSTGRES_DATABASE_SIZE_BYTES = "lookout_postgres_database_size_bytes", Gauge, ["target", "database"], "Size on disk of each database that accepts connections (templates left out).";
    POSTGRES_REPLICATION_LAG_SECONDS = "lookout_postgres_replication_lag_seconds", Gauge, ["target"], "How far a replica's replay is behind its primary (0 when caught up); absent on a primary.";
    // The cache-versus-database race.
    RACE_DURATION_SECONDS = "lookout_race_duration_seconds", Gauge, ["race", "source"], "How long the race's lookup took on each side (redis, postgres) in the last run.";
    RACE_SPEEDUP_RATIO = "lookout_race_speedup_ratio", Gauge, ["race"], "The PostgreSQL lookup's time / the Redis lookup's: how many times faster the cache answered.";
    // API latency: probes.
    PROBE_SUCCESS = "lookout_probe_success", Gauge, ["probe"], "1 if the last probe round succeeded, else 0.";
    PROBE_DURATION_SECONDS = "lookout_probe_duration_seconds", Gauge, ["probe"], "Duration of the last probe attempt.";
    PROBE_HTTP_STATUS_CODE = "lookout_probe_http_status_code", Gauge, ["probe"], "HTTP status code of the last probe attempt (0 if none).";
    PROBE_DURATION_SECONDS_HIST = "lookout_probe_duration_seconds_hist", Histogram, ["probe"], "Distribution of probe attempt durations.";
    PROBE_ATTEMPTS_FAILED_TOTAL = "lookout_probe_attempts_failed_total", Counter, ["probe"], "Probe attempts that failed, retried ones included.";
    // API latency: pushed observations.
    API_REQUEST_DURATION_SECONDS = "lookout_api_request_duration_seconds", Histogram, ["route", "method"], "Distribution of reported request durations.";
    API_REQUESTS_TOTAL = "lookout_api_requests_total", Counter, ["route", "method", "status_class"], "Reported requests by status class.";
    API_LATENCY_P50_SECONDS = "lookout_api_latency_p50_seconds", Gauge, ["route", "method"], "Median request duration over the ingest window; absent below collect.ingest.min_requests.";
    API_LATENCY_P95_SECONDS = "lookout_api_latency_p95_seconds", Gauge, ["route", "method"], "95th percentile request duration over the ingest window; absent below collect.ingest.min_requests.";
    API_LATENCY_P99_SECONDS = "lookout_api_latency_p99_seconds", Gauge, ["route", "method"], "99th percentile request duration over the ingest window; absent below collect.ingest.min_requests.";
    API_LATENCY_AVG_SECONDS = "lookout_api_latency_avg_seconds", Gauge, ["route", "method"], "Average request duration over the ingest window; absent below collect.ingest.min_requests.";
    API_ERROR_RATIO = "lookout_api_error_ratio", Gauge, ["route", "method"], "5xx responses / all responses over the ingest window; absent below collect.ingest.min_requests.";
    API_REQUESTS_PER_SECOND = "lookout_api_requests_per_second", Gauge, ["route", "method"], "Requests per second over the ingest window.";
    INGEST_ROUTE_OVERFLOW_TOTAL = "lookout_ingest_route_overflow_total", Counter, [], "Observations counted under route=\"_overflow\" because collect.ingest.max_routes distinct routes were already seen.";
    INGEST_REJECTED_TOTAL = "lookout_ingest_rejected_total", Counter, ["reason"], "Observation batches rejected, by reason (malformed, too_large, invalid, unauthorized).";
    // Check-ins of cron jobs and workers (collect.checkins).
    CHECKIN_UP = "lookout_checkin_up", Gauge, ["checkin"], "1 when the check-in reported in time and its last report was not a failure; 0 when it is late or failed.";
    CHECKIN_LATE = "lookout_checkin_late", Gauge, ["checkin"], "1 when no report (success or failure) came within every + grace of the last one, or by the schedule's next due time + grace; else 0.";
    CHECKIN_FAILED = "lookout_checkin_failed", Gauge, ["checkin"], "1 when the last report was a failure (/fail), until the next success; else 0.";
    CHECKIN_LAST_TIMESTAMP_SECONDS = "lookout_checkin_last_timestamp_seconds", Gauge, ["checkin"], "Unix time of the last success report; absent before the first.";
    CHECKIN_DURATION_SECONDS = "lookout_checkin_duration_seconds", Gauge, ["checkin"], "Time from a /start to the success or failure report that ended that run (the last such run); absent without one.";
    // Alerts and score.
    ALERT_FIRING = "lookout_alert_firing", Gauge, ["alert", "severity"], "1 while the alert instance is firing.";
    ALERTS = "lookout_alerts", Gauge, ["severity"], "Number of firing alert instances by severity.";
    SILENCES = "lookout_silences", Gauge, ["state"], "Silences by state: pending (not started), active, expired (kept for a day).";
    HEALTH_STATUS = "lookout_health_status", Gauge, [], "Worst firing severity: 0 ok, 1 warning, 2 critical.";
    SCALABILITY_SCORE = "lookout_scalability_score", Gauge, [], "Scalability score, 0..100.";
    SCALABILITY_PENALTY = "lookout_scalability_penalty", Gauge, ["component"], "Points each score component takes off.";
    // The agent itself.
    COLLECTOR_UP = "lookout_collector_up", Gauge, ["collector"], "1 if the collector's last run succeeded, else 0.";
    COLLECTOR_DURATION_SECONDS = "lookout_collector_duration_seconds", Gauge, ["collector"], "Duration of the collector's last run.";
    RULE_EVALUATION_DURATION_SECONDS = "lookout_rule_evaluation_duration_seconds", Gauge, [], "Duration of the last rule evaluation tick.";
    NOTIFICATIONS_TOTAL = "lookout_notifications_total", Counter, ["receiver", "result"], "Notification delivery attempts by result.";
    OUTBOX_PENDING = "lookout_outbox_pending", Gauge, [], "Notifications waiting for delivery: in the outbox, and kept in memory while it cannot be written.";
    OUTBOX_OLDEST_AGE_SECONDS = "lookout_outbox_oldest_age_seconds", Gauge, [], "Age of the oldest pending notification.";
    OUTBOX_WRITE_ERRORS_TOTAL = "lookout_outbox_write_errors_total", Counter, [], "Writes to the outbox file that failed (data_dir full or read-only, I/O errors); the notifications not written are kept in memory and written out once the disk accepts writes again.";
    HEARTBEAT_LAST_SUCCESS_TIMESTAMP_SECONDS = "lookout_heartbeat_last_success_timestamp_seconds", Gauge, [], "Unix time of the last heartbeat ping (notify.heartbeat) its URL answered with a 2xx; absent before the first.";
    HEARTBEAT_FAILURES_TOTAL = "lookout_heartbeat_failures_total", Counter, [], "Heartbeat pings that got no 2xx answer within notify.heartbeat.timeout (an error status, no connection, no answer).";
    HEARTBEAT_HEALTHY = "lookout_heartbeat_healthy", Gauge, [], "1 when the last heartbeat reported a healthy pipeline (its url), 0 when it reported a failure (its fail_url).";
    RECEIVER_CIRCUIT_STATE = "lookout_receiver_circuit_state", Gauge, ["receiver"], "Circuit breaker of a receiver: 0 closed, 1 half-open (one probe allowed), 2 open.";
    HISTORY_SERIES = "lookout_history_series", Gauge, [], "Series with points in the agent's history.";
    HISTORY_BYTES = "lookout_history_bytes", Gauge, [], "Bytes the compressed history holds (at most history.max_memory).";
    HISTORY_OLDEST_TIMESTAMP_SECONDS = "lookout_history_oldest_timestamp_seconds", Gauge, [], "Unix time of the oldest point in the history.";
    BUILD_INFO = "lookout_build_info", Gauge, ["version"], "Always 1; the version label says which build runs.";
    PROCESS_RESIDENT_MEMORY_BYTES = "process_resident_memory_bytes", Gauge, [], "Resident memory of the agent process.";
    PROCESS_CPU_SECONDS_TOTAL = "process_cpu_seconds_total", Counter, [], "User and system CPU time of the agent process.";
}

/// Looks a metric up by its exported name.
pub fn lookup(name: &str) -> Option<&'static Metric> {
    ALL.iter().copied().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_follow_conventions() {
        let mut seen = HashSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "duplicate metric {}", m.name);
            assert!(
                m.name.starts_with("lookout_") || m.name.starts_with("process_"),
                "{} lacks the lookout_ prefix",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                m.name
            );
            assert!(
                !m.name.contains("percent"),
                "{}: ratios, never percent",
                m.name
            );
            assert!(
                !m.labels.contains(&"host"),
                "{}: host is added on export",
                m.name
            );
        }
    }

    #[test]
    fn lookup_finds_declared_names_only() {
        assert_eq!(
            lookup("lookout_load1").map(|m| m.name),
            Some("lookout_load1")
        );
        assert!(lookup("lookout_load2").is_none());
    }
}

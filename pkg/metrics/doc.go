// Package metrics turns berth's lifespan events, lifecycle signals, shutdown
// report, probe results and HTTP requests into Prometheus metrics, on a
// registry the caller passes (never the global one).
//
//	berth_hook_duration_seconds{app,hook,phase="start"|"stop"}  gauge
//	berth_hook_failures_total{app,hook,phase}                    counter
//	berth_task_failures_total{app,task}                          counter
//	berth_startup_duration_seconds{app}                          gauge
//	berth_phase{app,phase}                                       gauge (1 for the current phase)
//	berth_lifecycle_signal_timestamp_seconds{signal}             gauge (when each serve signal fired)
//	berth_lifecycle_signal{signal}                               gauge (1 for the signal fired last)
//	berth_ready                                                  gauge
//	berth_http_requests_in_flight                                gauge
//	berth_http_requests_turned_away_total                        counter (503 before startup completed)
//	berth_grace_period_seconds                                   gauge (as told: BERTH_GRACE_PERIOD; absent when not told)
//	berth_prestop_delay_seconds                                  gauge (the preStop sleep the grace period counts)
//	berth_shutdown_budget_seconds                                gauge
//	berth_shutdown_duration_seconds                              gauge
//	berth_drain_duration_seconds                                 gauge (DrainStarted to InFlightDrained)
//	berth_drain_served_during_delay                              gauge
//	berth_drain_in_flight_at_drain_start                         gauge
//	berth_drain_cut_off_requests                                 gauge
//	berth_check_up{check,probe}                                  gauge (cached result)
//	berth_check_failures_total{check}                            counter
//	berth_check_duration_seconds{check}                          gauge
//	berth_check_last_run_timestamp_seconds{check}                gauge
//	berth_http_requests_total{method,route,code}                 counter
//	berth_http_request_duration_seconds{method,route}            histogram
//
// [Lifespan] observes apps (its OnEvent is a lifespan.Observer);
// [RegisterServer] reads a serve.Server's signals and gate at scrape time and records its
// shutdown report; [RegisterChecks] reads each probe check's last result,
// never running a check; [HTTP] records requests by route template (Gin's
// FullPath, through package ginberth), never the raw path, and by method
// only for the nine standard methods ("other" for the rest), so
// cardinality stays bounded. [HTTP] is a collector of its own, not
// client_golang's CounterVec and HistogramVec, because it runs on every
// request: a request costs two atomic additions (its bucket, and the sum in
// integer nanoseconds), and the counter and the histogram's count are both
// sums of the same buckets. Hooks start once per process, so their
// durations are gauges, not histograms. The shutdown's figures are also
// logged by package serve, since the process usually exits before the next
// scrape, and [Push] sends them to a Prometheus Pushgateway as the process
// exits; [Prune] deletes the Pushgateway's groups of processes that exited
// long ago, which it would otherwise keep for ever.
package metrics

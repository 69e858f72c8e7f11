// Package metrics turns berth's lifespan events, shutdown figures, probe
// results and HTTP requests into Prometheus metrics, on a registry the
// caller passes (never the global one).
//
//	berth_hook_duration_seconds{app,hook,phase="start"|"stop"}  gauge
//	berth_hook_failures_total{app,hook,phase}                    counter
//	berth_task_failures_total{app,task}                          counter
//	berth_startup_duration_seconds{app}                          gauge
//	berth_shutdown_duration_seconds{app}                         gauge
//	berth_phase{app,phase}                                       gauge (1 for the current phase)
//	berth_ready{app}                                             gauge
//	berth_drain_served_during_delay                              gauge
//	berth_drain_in_flight_at_delay_end                           gauge
//	berth_drain_cut_off_requests                                 gauge
//	berth_check_up{check,probe}                                  gauge (cached result)
//	berth_check_duration_seconds{check}                          gauge
//	berth_check_last_run_timestamp_seconds{check}                gauge
//	berth_http_requests_total{method,route,code}                 counter
//	berth_http_request_duration_seconds{method,route}            histogram
//	berth_http_requests_in_flight                                gauge
//
// Hooks start once per process, so their durations are gauges, not
// histograms. Check metrics read each check's last result at scrape time
// and never run a check. HTTP metrics label by route template (Gin's
// FullPath), never by raw path, and by method only for the nine standard
// methods ("other" for the rest), so cardinality stays bounded. The
// shutdown's figures are also logged by package serve, since the process
// usually exits before the next scrape.
package metrics

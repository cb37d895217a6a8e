package ddclient

// MetricsHelp returns the HELP text of the client's metrics by family name.
func (c *Client) MetricsHelp() map[string]string {
	return map[string]string{
		`nodescraper_dd_payloads_sent_total`:          "Payloads Datadog accepted.",
		`nodescraper_dd_points_sent_total`:            "Points in the payloads Datadog accepted.",
		`nodescraper_dd_bytes_sent_total`:             "Bytes of the accepted payloads as sent (compressed).",
		`nodescraper_dd_bytes_uncompressed_total`:     "Bytes of the accepted payloads before compression.",
		`nodescraper_dd_retries_total`:                "Requests to Datadog retried after an error or a retryable status.",
		`nodescraper_dd_points_dropped_total`:         "Points dropped, by reason.",
		`nodescraper_dd_points_spooled_total`:         "Points written to the disk spool while Datadog could not take them.",
		`nodescraper_dd_points_replayed_total`:        "Points read back from the disk spool and sent.",
		`nodescraper_dd_queue_bytes`:                  "Bytes of payloads waiting in memory to be sent.",
		`nodescraper_dd_spool_bytes`:                  "Bytes in the disk spool.",
		`nodescraper_dd_spool_points`:                 "Points in the disk spool.",
		`nodescraper_dd_spool_segments_refused_total`: "Spool segment files refused unread and removed: larger than any segment the agent writes (corrupt or not its own).",
		`nodescraper_dd_tags_shortened_total`:         "Tags cut to Datadog's tag length (ending in a hash of the whole tag).",
		`nodescraper_dd_reserved_tags_renamed_total`:  "Labels of new series (scraped, a target's, or from relabeling) named as a tag the agent owns (host, env, service, version, kube_*, ...), sent as exported_<name>; once per series.",
		`nodescraper_dd_reserved_tags_dropped_total`:  "Labels of new series repeating a Kubernetes tag the agent sends, same name and value, not sent; once per series.",
		`nodescraper_dd_service_checks_sent_total`:    "Service checks (per-target health) Datadog accepted.",
		`nodescraper_dd_service_checks_dropped_total`: "Service checks dropped: the queue was full or they grew older than Datadog accepts.",
		`nodescraper_dd_metadata_updates_total`:       "Metric metadata updates sent to Datadog, by result (sent, failed).",
		`nodescraper_dd_metadata_names`:               "Metric names whose metadata (HELP, UNIT) is held for sending, at most --metadata-max-names.",
		`nodescraper_dd_metadata_evicted_total`:       "Metric names whose metadata was evicted, least recently met first, past --metadata-max-names or its bytes: their metadata may be sent again.",
		`nodescraper_dd_metric_shapes`:                "Metric shapes (a metric name's encoded start, shared by its series) the targets' appenders hold.",
		`nodescraper_dd_metric_shapes_evicted_total`:  "Metric shapes released because every series that used them went away (stale or gone from the scrape).",
	}
}

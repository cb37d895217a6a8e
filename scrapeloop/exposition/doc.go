// Package exposition parses the Prometheus text (0.0.4) and OpenMetrics 1.0
// text exposition formats without allocating per sample.
//
// A Parser walks a scraped payload one sample at a time and exposes the raw
// series bytes (the scrape-cache key), the metric family with its type, unit
// and help, the sample's role inside its family, and the value and
// timestamp. Label pairs are unescaped only when asked for. By default the
// parser accepts what Prometheus' scraper accepts; SetStrict turns on full
// OpenMetrics validation.
package exposition

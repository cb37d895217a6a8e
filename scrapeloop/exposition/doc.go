// Package exposition parses the Prometheus text (0.0.4) and OpenMetrics 1.0
// text exposition formats without allocating per sample.
//
// A Parser walks a scraped payload one sample at a time and exposes the raw
// series bytes (the scrape-cache key), the metric family with its type, unit
// and help, the sample's role inside its family, and the value and
// timestamp. Label pairs are unescaped only when asked for.
//
// By default the parser accepts exactly what Prometheus' scraper
// (model/textparse) accepts, with the same series, values and timestamps,
// payloads with NUL bytes aside (textparse's lexers treat them
// inconsistently); the tests check this against textparse on real payloads,
// the OpenMetrics conformance vectors and fuzzed input. That leniency includes, in the text
// format: blanks before a line and around every token inside braces, label
// pairs without commas and a trailing comma, a value right after the name
// or '}' without a blank ("foo-1" is foo = -1), raw newlines inside quoted
// label values, unknown backslash escapes kept as written, a NUL byte at the
// start of a line ending the payload, and "# HELP"/"# TYPE" text that starts
// one byte past the name, whatever that byte is. In OpenMetrics: a trailing
// comma in label sets, and none of the rules strict.go lists.
//
// SetStrict(true) applies the OpenMetrics 1.0 rules as the specification's
// reference parser does (strict.go lists each); the text format has no
// stricter mode.
//
// Two deliberate differences from textparse: the metric name of a text line
// never includes the blanks that lead the line (textparse keeps them, and
// so finds no # TYPE for such a name; here it gets its family's type), and
// le/quantile label values are returned as written (textparse rewrites them
// in OpenMetrics float form); the raw bytes are the series identity.
//
// Files: parser.go holds the Parser, Next and the accessors; text.go and
// openmetrics.go parse the sample lines of each format, meta.go the "#"
// lines, lex.go the tokens both share, swar.go the eight-bytes-at-a-time
// scanning they rely on; float.go parses values, reuse.go carries label
// pairs over from the previous line, created.go finds a sample's _created
// (Created), strict.go holds the strict OpenMetrics rules.
package exposition

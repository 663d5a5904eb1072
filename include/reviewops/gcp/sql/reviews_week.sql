-- The reviews of one week of a BigQuery table, as the canonical columns.
--
-- Filled in by reviewops.gcp.bigquery.week_query: the table, the select list and the
-- date column are identifiers checked against strict patterns and backquoted there; the
-- window only ever arrives as the query parameters @window_start (inclusive) and
-- @window_end (exclusive), typed like the date column (DATE, TIMESTAMP or DATETIME).
--
-- Rows without a date are selected every week, as file sources keep rows whose date
-- cannot be parsed: validation quarantines them, so they are seen until the table is
-- fixed instead of vanishing from every week. The filter names only the date column and
-- parameters, so on a table partitioned by it BigQuery can prune to the week and NULL partitions.
--
-- The order (review_date, then every other column) makes the landed file, and so its
-- sha256, the same whenever the week's rows are the same.
SELECT
{select_list}
FROM {table}
WHERE ({date_column} >= @window_start AND {date_column} < @window_end)
   OR {date_column} IS NULL
ORDER BY 5, 1, 2, 3, 4, 6, 7

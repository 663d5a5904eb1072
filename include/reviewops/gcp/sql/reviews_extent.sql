-- The first and last review date of a BigQuery table up to today, for a load of the
-- whole source (reviews_initial_load without window_start/window_end).
--
-- Filled in by reviewops.gcp.bigquery.extent_query: the table and the date column are
-- checked, backquoted identifiers; @until (exclusive, the day after today) is a query
-- parameter typed like the date column, so a date typo far in the future does not make
-- the load write empty weeks until then.
SELECT
  MIN({date_column}) AS first_date,
  MAX({date_column}) AS last_date
FROM {table}
WHERE {date_column} < @until

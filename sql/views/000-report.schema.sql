-- The report schema holds only views and functions, so it is rebuilt whole on every
-- apply: no CREATE OR REPLACE column-change errors, nothing stale left behind.
drop schema if exists report cascade;
create schema report;

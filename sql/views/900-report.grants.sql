-- The API's role reads the reports (the report schema is rebuilt on every apply).
do $$
begin
  execute format('grant usage on schema report to %I', internal.api_role());
  execute format('grant select on all tables in schema report to %I', internal.api_role());
  execute format('grant execute on all routines in schema report to %I', internal.api_role());
end $$;

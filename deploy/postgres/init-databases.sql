-- Run once by the postgres image on an empty data volume, after it created POSTGRES_DB
-- (the Dagster instance's database): the warehouse gets a database of its own.
CREATE DATABASE gtm_warehouse;

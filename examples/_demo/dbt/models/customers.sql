-- The warehouse table loaded by load_to_warehouse, as a dbt model to test.
select * from {{ source('warehouse', 'customers') }}

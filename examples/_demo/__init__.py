"""Demo data for the examples (a messy CRM in SQLite); not part of the headrace package."""

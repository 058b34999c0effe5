"""Reports: CSV exports of executions, fee accruals, leader withdrawals,
ledger transfers and the subscriptions of leaders' portfolios.

One definition per kind (``kinds.REPORTS``), one streaming writer
(``stream.csv_blocks``); two callers: the admin's "Export CSV" link
(``admin_export.export_view``) and ``manage.py export_report``."""

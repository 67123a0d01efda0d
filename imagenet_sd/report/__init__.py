"""Stage 7, report: the result tables of evaluation, transfer, robustness and published references
(evaluation_tables, transfer_tables, robustness_tables, reference_tables, references) and what they share
(result_tables: the (real) label, Markdown tables, radar charts, the writer of a table's files), the report
registry (report), contact sheets (contact_sheets) and training curves (curves). (Not named `results`: that is
the workflow's output folder.)"""

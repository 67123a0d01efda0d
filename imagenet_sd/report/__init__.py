"""Stage 7, report: the result tables of evaluation, transfer, robustness and published references (tables,
transfer_tables, robustness_tables, reference_tables, references), the report registry (report), contact sheets
(contact_sheets) and training curves (plots). (Not named `results`: that is the workflow's output folder.)"""

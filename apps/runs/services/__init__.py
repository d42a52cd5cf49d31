"""State changes of programs, campaigns and jobs. Import from the submodules:

programs (program_load), campaigns (campaign_submit, campaign_cancel, job_rerun, job_claim,
job_progress, job_fail), ingestion (result_ingest), sweeps (scheduled maintenance).
"""

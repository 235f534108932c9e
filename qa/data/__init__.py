"""Stage 1, data: where the SQuAD files are (files) and fetching them (download), reading them
and user tables (load, tables), the dev-v2.0 article split (split), the SQuAD 2.0 stand-in
(standin, perturb), and questions into token windows (windows).
"""

"""Stage 5, the training run that run_qa.py drives: its arguments (config), folders and resume
(checkpoints, resume, storage), ranks and signals (ranks, interrupt), the Trainer callbacks
(callbacks) and where its trackers write (trackers), what a run leaves behind (outputs, card,
plots), and search_qa.py's study, trials table and best config (search).
"""

"""What a fit holds: the option table (:mod:`.option_table`, :mod:`.option_entries`), the
option groups (:mod:`.options`), the problem, state and run (:mod:`.problem`), the result
(:mod:`.result`), the reporting (:mod:`.progress`), the data's scales (:mod:`.scales`)."""

-- wrk script of bench/scale.py: every request creates a session from the bench's template.
wrk.method = "POST"
wrk.body = '{"template":"scale"}'
wrk.headers["Content-Type"] = "application/json"

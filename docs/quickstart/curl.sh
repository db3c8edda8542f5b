curl -s http://127.0.0.1:8787/v1/messages -D - \
  -H 'content-type: application/json' -H 'x-api-key: sk-ant-your-key' -H 'anthropic-version: 2023-06-01' \
  -H 'x-envelope-task: triage-42' -H 'x-envelope-budget: 50000' -H 'x-envelope-policy: hard' \
  -d '{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":[{"role":"user","content":"hello"}]}'
# x-envelope-budget-used / -remaining / -state headers; a refused call is HTTP 402 in Anthropic's error shape

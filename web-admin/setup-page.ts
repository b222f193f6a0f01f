/**
 * The first-run setup page that `pmb serve` shows at GET /setup. Kept as a string module so the single
 * binary carries it with the code; no external resources, no framework.
 */
export const SETUP_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PMB setup</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 34em; margin: 2em auto; padding: 0 1em; color: #222; }
  label { display: block; margin-top: 1em; font-weight: 600; }
  input, select, button { font: inherit; padding: .4em; width: 100%; box-sizing: border-box; }
  button { margin-top: 1.5em; cursor: pointer; }
  small { color: #555; font-weight: normal; }
  .error { color: #a00; }
  pre { background: #f3f3f3; padding: .8em; white-space: pre-wrap; word-break: break-all; }
</style>
</head>
<body>
<h1>Set up your PMB server</h1>
<form id="setup">
  <label>Setup token <small>(printed by pmb serve at its first start; pmb init --show-token shows it again)</small>
    <input name="token" required autocomplete="off" placeholder="XXXX-XXXX-XXXX-XXXX"></label>
  <label>Domain <small>(addresses will be nick@domain; cannot change once accounts exist)</small>
    <input name="domain" required placeholder="home.example.org"></label>
  <label>Your nickname <small>(the first account, yours)</small>
    <input name="admin" required placeholder="alice"></label>
  <label>Who may register
    <select name="registration">
      <option value="invite">people with an invite code (recommended)</option>
      <option value="open">anyone who reaches this server</option>
      <option value="closed">nobody for now</option>
    </select></label>
  <button type="submit">Finish setup</button>
  <p id="error" class="error" role="alert"></p>
</form>
<div id="done" hidden>
  <p>Done. Your domain is <b id="domain"></b>. Take your account with this command on your computer:</p>
  <pre id="command"></pre>
  <p>The invite code is valid for 7 days. Make more with <code>pmb invite</code> on the server.</p>
</div>
<script>
  const form = document.getElementById('setup');
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('token')) form.token.value = hash.get('token');
  fetch('setup/status').then((r) => r.json()).then((s) => {
    if (s.domain && !form.domain.value) form.domain.value = s.domain;
    if (s.registration) form.registration.value = s.registration;
    if (s.pending === false) document.getElementById('error').textContent = 'This server is already set up.';
  }).catch(() => {});
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = document.getElementById('error');
    err.textContent = '';
    const body = {
      token: form.token.value, domain: form.domain.value,
      registration: form.registration.value, admin: { nick: form.admin.value },
    };
    try {
      const res = await fetch('setup', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const out = await res.json();
      if (!res.ok) { err.textContent = out.error ? out.error.message : 'HTTP ' + res.status; return; }
      form.hidden = true;
      document.getElementById('domain').textContent = out.domain;
      document.getElementById('command').textContent = out.register;
      document.getElementById('done').hidden = false;
    } catch (e) {
      err.textContent = 'Cannot reach the server: ' + e;
    }
  });
</script>
</body>
</html>
`;

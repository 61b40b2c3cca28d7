/**
 * Script both admin pages (dashboard, fleet) open with, inside their
 * function scope: the admin token kept in the browser, element helpers, and
 * the error a request throws when the token is missing or refused. Put in
 * where a page says ${page_common_script}.
 */
export const page_common_script = String.raw`var token_key = "interlog.admin_token";
  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value; }
  function token() { try { return localStorage.getItem(token_key); } catch (e) { return null; } }
  function store_token(t) { try { localStorage.setItem(token_key, t); } catch (e) {} }
  function forget_token() { try { localStorage.removeItem(token_key); } catch (e) {} }
  function AuthError(message) { this.message = message; }`;

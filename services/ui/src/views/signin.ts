import { h, notice, replace } from '../dom.js';
import { route, type ViewContext } from '../context.js';
import { SignInError } from '../session.js';
import { heading } from './common.js';

export async function signInView(ctx: ViewContext): Promise<void> {
  const next = ctx.query.get('next') || route('');
  if (!ctx.session.canSignIn) {
    const why =
      ctx.session.config.auth === 'none'
        ? 'Access control is off (auth.mode none): there is nothing to sign in to.'
        : ctx.session.config.auth === 'htpasswd'
          ? 'This registry checks Basic credentials on every request (auth.mode htpasswd). The UI signs in only through the built-in token service (auth.mode token), so that it never has to keep a password.'
          : 'This registry uses an external token service, which the UI does not call.';
    replace(ctx.main, heading('Sign in'), notice('info', why));
    return;
  }
  const error = h('div', { id: 'signin-error' });
  const user = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'signin',
      'aria-labelledby': 'page-title',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        try {
          await ctx.session.signIn(user.value, password.value);
          ctx.go(next);
        } catch (err) {
          replace(error, notice('error', err instanceof SignInError ? err.message : `Sign-in failed: ${(err as Error).message}`));
          submit.disabled = false;
        } finally {
          // The password is exchanged once and not kept anywhere, not even in the form.
          password.value = '';
        }
      },
    },
    h('label', { for: 'username' }, 'User name'),
    user,
    h('label', { for: 'password' }, 'Password'),
    password,
    submit,
  );
  replace(
    ctx.main,
    heading('Sign in'),
    h('p', {}, 'The same user name and password as for docker login. They are exchanged once for a token; the password is not kept.'),
    error,
    form,
  );
  user.focus();
}

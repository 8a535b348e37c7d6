/** The person's choices that outlive a session: theme and language ('auto' follows the system). */

export type ThemeChoice = 'auto' | 'light' | 'dark';
export type LangChoice = 'auto' | 'en' | 'ja';

const THEME_KEY = 'sagasu.theme';
const LANG_KEY = 'sagasu.lang';

function read(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Storage can be disabled; the choice then lasts until the window closes.
  }
}

export function storedTheme(): ThemeChoice {
  const v = read(THEME_KEY);
  return v === 'light' || v === 'dark' ? v : 'auto';
}

/** 'auto' removes the attribute, so the stylesheet's color-scheme (light dark) follows the system. */
export function applyTheme(choice: ThemeChoice): void {
  if (choice === 'auto') document.documentElement.removeAttribute('data-theme');
  else document.documentElement.setAttribute('data-theme', choice);
  write(THEME_KEY, choice);
}

export function storedLang(): LangChoice {
  const v = read(LANG_KEY);
  return v === 'en' || v === 'ja' ? v : 'auto';
}

export function saveLang(choice: LangChoice): void {
  write(LANG_KEY, choice);
}

import { addMessages, getLocaleFromNavigator, init, locale } from 'svelte-i18n';
import { type LangChoice, saveLang, storedLang } from '../lib/prefs.ts';
import en from './en.json';
import ja from './ja.json';

export const UI_LANGS = ['en', 'ja'] as const;
export type UiLang = (typeof UI_LANGS)[number];

/** A BCP 47 tag from the system ("ja-JP", "en-GB") → a language the UI has; English otherwise. */
export function uiLangFor(tag: string | null | undefined): UiLang {
  return tag?.toLowerCase().startsWith('ja') ? 'ja' : 'en';
}

function resolve(choice: LangChoice): UiLang {
  return choice === 'auto' ? uiLangFor(getLocaleFromNavigator()) : choice;
}

export function setupI18n(): void {
  addMessages('en', en);
  addMessages('ja', ja);
  const lang = resolve(storedLang());
  init({ fallbackLocale: 'en', initialLocale: lang });
  document.documentElement.lang = lang;
}

export function setLang(choice: LangChoice): void {
  saveLang(choice);
  const lang = resolve(choice);
  locale.set(lang);
  document.documentElement.lang = lang;
}

import { mount } from 'svelte';
import App from './App.svelte';
import { setupI18n } from './i18n/index.ts';
import { applyTheme, storedTheme } from './lib/prefs.ts';
import './styles.css';

applyTheme(storedTheme());
setupI18n();

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element');
mount(App, { target });

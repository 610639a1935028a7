/*
 * A deliberately broken plugin for tests: a valid shared library that does
 * not export the entry point sf_plugin_entry, so the server must refuse it.
 */
int sf_plugin_entry_misspelled(void) { return 1; }

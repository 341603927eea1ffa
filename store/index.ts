/** The store's public interface: what `os0 up` wires in. */
export { Store, type StoreOptions, type AppData, type AppStatus, type Plan, type PlannedApp, type Done, type Uninstalled } from './store.ts';
export { mountStore } from './routes.ts';
export { trustPolicy, trustedKeys, TRUSTED_KEY, type TrustedKey } from './trust.ts';

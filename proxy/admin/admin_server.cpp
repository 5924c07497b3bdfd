// Placeholder so the certrelay_admin library has a source until the admin server lands.

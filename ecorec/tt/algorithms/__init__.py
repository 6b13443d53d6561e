"""The TT lookup algorithms on one core storage: ``ecorec``, ``fbtt`` (TT-Rec), ``elrec`` (EL-Rec)."""

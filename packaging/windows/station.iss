; Inno Setup 6 script: a Windows installer for the one-folder PyInstaller build.
;
; Build dist\station\ first on a Windows build PC (see docs\PACKAGING.md), then, from the repository root:
;
;   iscc /DAppVersion=0.1.0 packaging\windows\station.iss             (CPU-only torch in the bundle)
;   iscc /DAppVersion=0.1.0 /DCudaBuild packaging\windows\station.iss  (CUDA torch: about 4 GB)
;
; Output: dist\installer\station-<version>-windows-x86_64-setup.exe, plus setup-*.bin slices with
; /DCudaBuild (a single setup.exe cannot hold much more than 2 GB).
; Installs per machine into Program Files; settings, the audit log and logs stay in the user's
; folders (platformdirs), so an upgrade or uninstall never touches them.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z packaging\windows\station.iss
#endif
#define AppName "IC Inspection Station"
#define BundleDir "..\..\dist\station"

[Setup]
; a fixed AppId makes later versions upgrade this installation in place
AppId={{6F0C2E57-2B7D-4C1E-9A5B-3D8E4F1A7C20}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=station
DefaultDirName={autopf}\Station
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
OutputDir=..\..\dist\installer
OutputBaseFilename=station-{#AppVersion}-windows-x86_64-setup
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
; lzma2/max takes much longer on a bundle this size for a few percent less
Compression=lzma2
SolidCompression=yes
#ifdef CudaBuild
DiskSpanning=yes
DiskSliceSize=max
#endif
UninstallDisplayIcon={app}\station-gui.exe
ChangesEnvironment=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"
Name: "addtopath"; Description: "Add the 'station' command (self-test, audit, batch review) to PATH"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; an upgrade replaces the whole library folder, so no file of the previous version lingers
Type: filesandordirs; Name: "{app}\_internal"

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\station-gui.exe"
Name: "{group}\{#AppName} (demo)"; Filename: "{app}\station-gui.exe"; Parameters: "--demo"
; the self-test checks every stage (synthetic frame, capture, models, overlay, audit log) on this PC;
; cmd /k keeps its console open so the technician can read the result
Name: "{group}\{#AppName} self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\station.exe"" selftest"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\station-gui.exe"; Tasks: desktopicon

[Registry]
Root: HKLM; Subkey: "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NotOnPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\station-gui.exe"; Description: "Start {#AppName}"; Flags: nowait postinstall skipifsilent unchecked

[Code]
function NotOnPath(Folder: string): Boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKLM, 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment', 'Path', Path) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Folder) + ';', ';' + Uppercase(Path) + ';') = 0;
end;

// Take the install folder back out of PATH (the addtopath task put it there).
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Path, Entry: string;
  Start: Integer;
begin
  if CurUninstallStep <> usUninstall then
    exit;
  if not RegQueryStringValue(HKLM, 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment', 'Path', Path) then
    exit;
  Entry := ';' + ExpandConstant('{app}');
  Start := Pos(Uppercase(Entry), Uppercase(Path));
  if Start = 0 then
    exit;
  Delete(Path, Start, Length(Entry));
  RegWriteExpandStringValue(HKLM, 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment', 'Path', Path);
end;

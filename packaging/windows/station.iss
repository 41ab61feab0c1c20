; Inno Setup 6.3 or later script: a Windows installer for the one-folder PyInstaller build.
;
; Build dist\station\ first on a Windows build PC (see docs\PACKAGING.md), then, from the repository root:
;
;   iscc /DAppVersion=0.1.0 packaging\windows\station.iss             (CPU-only torch in the bundle)
;   iscc /DAppVersion=0.1.0 /DCudaBuild packaging\windows\station.iss  (CUDA torch: about 4 GB)
;
; Signed (optional; without /DSign nothing is signed and no certificate is needed): define a sign tool
; named "stationsign" on the command line; the executables, setup.exe and the uninstaller are signed:
;
;   iscc /DAppVersion=0.1.0 /DSign "/Sstationsign=signtool.exe sign /fd sha256 /tr http://timestamp.digicert.com /td sha256 /a $f" packaging\windows\station.iss
;
; With the VC++ runtime (optional): /DVCRedist=C:\path\vc_redist.x64.exe installs it when it is missing.
;
; Output: dist\installer\station-<version>-windows-x86_64-setup.exe, plus setup-*.bin slices with
; /DCudaBuild (a single setup.exe cannot hold much more than 2 GB).
; Installs per machine into Program Files and makes the machine's data folder
; C:\ProgramData\station\data (the audit log and archived images of every user; users may modify
; it) and C:\ProgramData\station\config (a lab admin's settings.json for every user; users may
; read it). An upgrade or uninstall never touches either.

#if Ver < EncodeVer(6, 3, 0)
  #error Inno Setup 6.3 or later is needed (ArchitecturesAllowed=x64compatible)
#endif
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
SetupIconFile=..\..\resources\icons\station.ico
ChangesEnvironment=yes
; Windows 10 1809 / Server 2019: the oldest Windows the bundled torch and Qt 6 run on
MinVersion=10.0.17763
#ifdef Sign
SignTool=stationsign
SignedUninstaller=yes
#endif

[Dirs]
Name: "{commonappdata}\station\data"; Permissions: users-modify; Flags: uninsneveruninstall
Name: "{commonappdata}\station\config"; Flags: uninsneveruninstall

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"
Name: "addtopath"; Description: "Add the 'station' command (self-test, audit, batch review) to PATH"; Flags: unchecked

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Excludes: "\station.exe,\station-gui.exe"; Flags: ignoreversion recursesubdirs createallsubdirs
#ifdef Sign
Source: "{#BundleDir}\station.exe"; DestDir: "{app}"; Flags: ignoreversion signonce
Source: "{#BundleDir}\station-gui.exe"; DestDir: "{app}"; Flags: ignoreversion signonce
#else
Source: "{#BundleDir}\station.exe"; DestDir: "{app}"; Flags: ignoreversion
Source: "{#BundleDir}\station-gui.exe"; DestDir: "{app}"; Flags: ignoreversion
#endif
#ifdef VCRedist
Source: "{#VCRedist}"; DestDir: "{tmp}"; DestName: "vc_redist.x64.exe"; Flags: deleteafterinstall
#endif

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
#ifdef VCRedist
Filename: "{tmp}\vc_redist.x64.exe"; Parameters: "/install /quiet /norestart"; StatusMsg: "Installing the Microsoft Visual C++ runtime..."; Check: VCRuntimeMissing; Flags: waituntilterminated
#endif
Filename: "{app}\station-gui.exe"; Description: "Start {#AppName}"; Flags: nowait postinstall skipifsilent unchecked

[Code]
const
  EnvironmentKey = 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment';

// A PATH entry as compared: no surrounding spaces or quotes, no trailing backslash, upper case.
function NormalPathEntry(Entry: string): string;
begin
  Result := Uppercase(RemoveQuotes(Trim(Entry)));
  while (Length(Result) > 3) and (Result[Length(Result)] = '\') do
    Delete(Result, Length(Result), 1);
end;

// PATH without the entries that are Folder itself (never ones that merely start with it, such as
// C:\Program Files\Station2 for C:\Program Files\Station); the other entries keep their order.
function WithoutPathEntry(Path, Folder: string): string;
var
  Rest, Entry: string;
  Split: Integer;
begin
  Result := '';
  Rest := Path;
  while Rest <> '' do
  begin
    Split := Pos(';', Rest);
    if Split = 0 then
    begin
      Entry := Rest;
      Rest := '';
    end else
    begin
      Entry := Copy(Rest, 1, Split - 1);
      Delete(Rest, 1, Split);
    end;
    if (Trim(Entry) <> '') and (NormalPathEntry(Entry) <> NormalPathEntry(Folder)) then
    begin
      if Result <> '' then
        Result := Result + ';';
      Result := Result + Entry;
    end;
  end;
end;

function NotOnPath(Folder: string): Boolean;
var
  Path, Rest, Entry: string;
  Split: Integer;
begin
  Result := True;
  if not RegQueryStringValue(HKLM, EnvironmentKey, 'Path', Path) then
    exit;
  Rest := Path + ';';
  while Rest <> '' do
  begin
    Split := Pos(';', Rest);
    Entry := Copy(Rest, 1, Split - 1);
    Delete(Rest, 1, Split);
    if NormalPathEntry(Entry) = NormalPathEntry(Folder) then
    begin
      Result := False;
      exit;
    end;
  end;
end;

// Take the install folder back out of PATH (the addtopath task put it there).
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Path, Cleaned: string;
begin
  if CurUninstallStep <> usUninstall then
    exit;
  if not RegQueryStringValue(HKLM, EnvironmentKey, 'Path', Path) then
    exit;
  Cleaned := WithoutPathEntry(Path, ExpandConstant('{app}'));
  if Cleaned <> Path then
    RegWriteExpandStringValue(HKLM, EnvironmentKey, 'Path', Cleaned);
end;

#ifdef VCRedist
// The VC++ 2015-2022 x64 runtime registers itself here once installed.
function VCRuntimeMissing: Boolean;
var
  Installed: Cardinal;
begin
  Result := not (RegQueryDWordValue(HKLM64, 'SOFTWARE\Microsoft\VisualStudio\14.0\VC\Runtimes\x64', 'Installed', Installed)
                 and (Installed = 1));
end;
#endif
